"""A reset of an unchanged model reuses its last plan; every change to what a plan is made
from gives the values (and the errors) a fresh plan gives, checked against PyTorch itself."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.overrides import TorchFunctionMode

from seeded_init import PlanError, SeededModule, derive_seed, seeded_init
from seeded_init._plan import build_plan

from .helpers import assert_same, garbage, nn_init, reference, snapshot


class Net(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.emb = nn.Embedding(6, 4, padding_idx=1)
        self.norm = nn.BatchNorm1d(4)

    @seeded_init(scheme="normal", std=lambda self: 0.02 * self.scale, seed=7)
    def head(self) -> nn.Linear:
        return nn.Linear(4, 2)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many plans the resets built (a reset served from the cache builds none)."""
    count: list[int] = []

    def counting(*args: Any) -> object:
        count.append(1)
        return build_plan(*args)

    monkeypatch.setattr("seeded_init._module.build_plan", counting)
    yield count


def layer(m: Net, i: int) -> nn.Linear:
    out = m.layers[i]
    assert isinstance(out, nn.Linear)
    return out


def linear(m: Net, i: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """PyTorch's Linear(4, 4) at layers.i, from its derived seed."""
    return snapshot(reference(derive_seed(seed, f"layers.{i}"), lambda: nn.Linear(4, 4)))


def test_second_reset_reuses_the_plan_and_gives_pytorchs_values(
    builds: list[int], global_rng_guard: None
) -> None:
    m = Net()  # the construction's reset plans on its own
    garbage(m)
    m.reset_parameters()
    first = len(builds)
    garbage(m)
    m.reset_parameters()
    assert len(builds) == first  # reused
    for i in range(3):
        assert_same(snapshot(m.layers[i]), linear(m, i))
    want_emb = reference(derive_seed(0, "emb"), lambda: nn.Embedding(6, 4, padding_idx=1))
    assert_same(snapshot(m.emb), snapshot(want_emb))
    assert torch.equal(m.head.weight, nn_init(nn.init.normal_, (2, 4), 7, std=0.02))
    assert_same(snapshot(m.norm), snapshot(nn.BatchNorm1d(4)))


Change = Callable[[Net], None]


def _replace_layer(m: Net) -> None:
    m.layers[1] = nn.Linear(4, 4)


def _new_data(m: Net) -> None:
    layer(m, 1).weight.data = torch.empty(4, 4)


def _to_empty(m: Net) -> None:
    m.to_empty(device="cpu")


CHANGES: dict[str, Change] = {
    "a layer replaced": _replace_layer,
    "a parameter's data replaced": _new_data,
    "to_empty": _to_empty,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_changed_tensors_are_written_as_pytorch_would(change: Change) -> None:
    m = Net()
    m.reset_parameters()
    change(m)
    garbage(m)
    m.reset_parameters()
    for i in range(3):
        assert_same(snapshot(m.layers[i]), linear(m, i))


def test_a_new_shape_gets_its_own_fan(builds: list[int]) -> None:
    """A weight given other data (``.data =``, no hook fires) is planned again: PyTorch's
    Linear(8, 4) values, its bias bound from fan_in 8."""
    m = Net()
    m.reset_parameters()
    before = len(builds)
    fc = layer(m, 2)
    fc.weight.data = torch.empty(4, 8)
    m.reset_parameters()
    assert len(builds) == before + 1
    want = reference(derive_seed(0, "layers.2"), lambda: nn.Linear(8, 4))
    assert_same(snapshot(fc), snapshot(want))


def test_an_appended_layer_is_initialized(builds: list[int]) -> None:
    m = Net()
    m.reset_parameters()
    m.layers.append(nn.Linear(4, 4))
    garbage(m)
    m.reset_parameters()
    assert_same(snapshot(m.layers[3]), linear(m, 3))


def test_a_new_root_seed_and_a_per_call_seed() -> None:
    m = Net()
    m.reset_parameters()
    m.root_seed = 5
    m.reset_parameters()
    assert_same(snapshot(m.layers[0]), linear(m, 0, seed=5))
    m.reset_parameters(seed=9)
    assert_same(snapshot(m.layers[0]), linear(m, 0, seed=9))
    m.reset_parameters()
    assert_same(snapshot(m.layers[0]), linear(m, 0, seed=5))


def test_a_changed_padding_row() -> None:
    m = Net()
    m.reset_parameters()
    m.emb.padding_idx = 4
    m.reset_parameters()
    want = reference(derive_seed(0, "emb"), lambda: nn.Embedding(6, 4, padding_idx=4))
    assert_same(snapshot(m.emb), snapshot(want))


def test_a_keyword_function_is_called_again() -> None:
    """``std=lambda self: 0.02 * self.scale`` reads the model each reset."""
    m = Net()
    m.reset_parameters()
    m.scale = 3.0
    m.reset_parameters()
    assert torch.equal(m.head.weight, nn_init(nn.init.normal_, (2, 4), 7, std=0.02 * 3.0))


def test_a_new_dtype() -> None:
    m = Net()
    m.reset_parameters()
    m.double()
    m.reset_parameters()
    want = reference(derive_seed(0, "layers.0"), lambda: nn.Linear(4, 4, dtype=torch.float64))
    assert_same(snapshot(m.layers[0]), snapshot(want))


def test_a_non_contiguous_weight() -> None:
    """A weight made its own transpose (same memory, shape and dtype: only the strides
    differ) is drawn in full and copied, as for a fresh plan."""
    m = Net()
    m.reset_parameters()
    w = layer(m, 0).weight
    w.data = w.data.t()
    garbage(m)
    m.reset_parameters()
    assert not layer(m, 0).weight.is_contiguous()
    assert_same(snapshot(m.layers[0]), linear(m, 0))


def test_a_reshaped_weight_in_the_same_memory() -> None:
    """``weight.data = weight.data.view(2, 8)``: only the shape changed; the fans follow."""
    m = Net()
    m.reset_parameters()
    fc = layer(m, 0)
    fc.weight.data = fc.weight.data.view(2, 8)
    m.reset_parameters()
    g = torch.Generator().manual_seed(derive_seed(0, "layers.0"))
    w, b = torch.empty(2, 8), torch.empty(4)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
    nn.init.uniform_(b, -1 / math.sqrt(8), 1 / math.sqrt(8), generator=g)
    assert torch.equal(fc.weight, w) and torch.equal(fc.bias, b)


def test_two_weights_made_to_share_memory_are_refused() -> None:
    """Distinct parameters on one storage (only the address changed): the overlap error of a
    fresh plan, nothing changed."""
    m = Net()
    m.reset_parameters()
    layer(m, 1).weight.data = layer(m, 0).weight.data
    garbage(m)
    before = snapshot(m)
    with pytest.raises(PlanError, match="overlapping memory"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_a_weight_viewed_as_integers_is_refused() -> None:
    """Same memory and shape, another dtype: the dtype error of a fresh plan."""
    m = Net()
    m.reset_parameters()
    w = layer(m, 0).weight
    w.requires_grad_(False)  # integer data cannot require gradients
    w.data = w.data.view(torch.int32)
    with pytest.raises(PlanError, match=r"has dtype torch\.int32"):
        m.reset_parameters()


def test_a_new_tie_is_honoured() -> None:
    m = Net()
    m.reset_parameters()
    layer(m, 1).weight = layer(m, 0).weight
    garbage(m)
    m.reset_parameters()
    assert layer(m, 1).weight is layer(m, 0).weight
    assert torch.equal(layer(m, 0).weight, linear(m, 0)["weight"])


def test_draw_dtype_per_call_after_a_cached_reset() -> None:
    m = Net()
    m.bfloat16()
    m.reset_parameters()
    m.reset_parameters(draw_dtype=torch.float32)
    want = reference(derive_seed(0, "layers.0"), lambda: nn.Linear(4, 4)).bfloat16()
    assert_same(snapshot(m.layers[0]), snapshot(want))
    m.reset_parameters()
    native = reference(derive_seed(0, "layers.0"), lambda: nn.Linear(4, 4, dtype=torch.bfloat16))
    assert_same(snapshot(m.layers[0]), snapshot(native))


def test_a_parametrization_added_later_is_written_through() -> None:
    """orthogonal() after a cached reset: the effective weight gets the layer's values."""
    m = Net()
    m.reset_parameters()
    parametrizations.orthogonal(m.layers[0])
    m.reset_parameters()
    w = layer(m, 0).weight
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)


def _prune(m: Net) -> None:
    prune.l1_unstructured(layer(m, 0), "weight", amount=0.5)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]


def _old_weight_norm(m: Net) -> None:
    with pytest.warns((FutureWarning, UserWarning), match="deprecated"):  # UserWarning < 2.4
        nn.utils.weight_norm(layer(m, 0))


def _delete_weight(m: Net) -> None:
    del layer(m, 0)._parameters["weight"]  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_prune, "is pruned"),
        (_old_weight_norm, "hook-based WeightNorm"),
        (_delete_weight, "has no weight"),
    ],
    ids=["pruned", "old weight_norm", "parameter deleted"],
)
def test_later_changes_that_cannot_be_planned_are_refused(change: Change, message: str) -> None:
    """What a fresh plan refuses is refused after a cached reset too, with nothing changed."""
    m = Net()
    m.reset_parameters()
    change(m)
    garbage(m)
    before = snapshot(m)
    with pytest.raises(PlanError, match=message):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_inference_tensors_outside_inference_mode_are_refused_after_a_cached_reset() -> None:
    """A reset inside inference_mode may write inference tensors; the same cached plan
    outside it may not: the refusal comes as from a fresh plan."""
    with torch.inference_mode():
        m = Net()
        m.reset_parameters()
        m.reset_parameters()
    with pytest.raises(PlanError, match="inference_mode"):
        m.reset_parameters()


def test_eval_mode_keeps_the_plan(builds: list[int]) -> None:
    m = Net()
    m.reset_parameters()
    before = len(builds)
    m.eval()
    m.reset_parameters()
    assert len(builds) == before


def test_a_sub_layer_reset_after_a_cached_reset() -> None:
    m = Net()
    m.reset_parameters()
    m.reset_parameters()
    garbage(m)
    layer(m, 2).reset_parameters()
    assert_same(snapshot(m.layers[2]), linear(m, 2))
    assert torch.equal(layer(m, 0).weight, torch.full((4, 4), 123.0))


def test_a_sparse_buffer_leaves_resets_to_the_full_plan(builds: list[int]) -> None:
    """A buffer without strides or storage (sparse) cannot be fingerprinted: every reset
    builds its plan, and gives PyTorch's values."""

    class Graph(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("adj", torch.eye(3).to_sparse())

    m = Graph()
    for _ in range(2):
        garbage(m.fc)
        m.reset_parameters()
    want = reference(derive_seed(0, "fc"), lambda: nn.Linear(3, 3))
    assert_same(snapshot(m.fc), snapshot(want))


def test_a_removed_layer_is_freed() -> None:
    """The cache holds no tensor and no module: deleting a layer frees its parameters."""
    m = Net()
    m.reset_parameters()
    gone = weakref.ref(layer(m, 2).weight)
    del m.layers[2]
    gc.collect()
    assert gone() is None


def test_a_layer_linked_by_another_model_is_linked_back() -> None:
    """A layer attached to another model and removed from it again: the next reset of its
    own model links it back, so its own reset draws as that model's part."""

    class Other(SeededModule):
        pass

    m = Net()
    m.reset_parameters()
    other = Other()
    other.x = layer(m, 1)
    del other.x
    m.reset_parameters()
    garbage(m)
    rng = torch.get_rng_state()
    layer(m, 1).reset_parameters()
    assert_same(snapshot(m.layers[1]), linear(m, 1))
    assert torch.equal(rng, torch.get_rng_state())


class Const(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.v: object = 1.0

    @seeded_init(scheme="constant", val=lambda self: self.v)
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)


def test_keyword_results_compare_by_type_and_bits() -> None:
    """``True`` after ``1`` is refused as a fresh plan refuses it; ``-0.0`` after ``0.0`` is
    written with its sign."""
    m = Const()
    m.v = 1
    m.reset_parameters()
    m.v = True
    with pytest.raises(PlanError, match="val=True"):
        m.reset_parameters()
    m.v = 0.0
    m.reset_parameters()
    m.v = -0.0
    m.reset_parameters()
    assert bool(torch.signbit(m.fc.weight).all())


def test_a_patched_nn_init_is_seen_as_by_a_fresh_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``nn.init.kaiming_uniform_`` replaced (as transformers' ``no_init_weights`` does
    for a while), a reset calls the replacement, cached or not."""
    calls: list[tuple[int, ...]] = []

    def recording(t: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t

    m = Net()
    m.reset_parameters()
    monkeypatch.setattr(nn.init, "kaiming_uniform_", recording)
    m.reset_parameters()
    assert calls == [(4, 4)] * 3


def test_a_torch_function_mode_sees_the_calls_of_a_fresh_plan() -> None:
    """Under a TorchFunctionMode a reset makes torch.nn.init's calls, cached or not."""
    seen: list[str] = []

    class Recording(TorchFunctionMode):
        def __torch_function__(
            self,
            func: Callable[..., Any],
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            seen.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    m = Net()
    m.reset_parameters()
    with Recording():
        m.reset_parameters()
    assert seen.count("kaiming_uniform_") == 3
    for i in range(3):
        assert_same(snapshot(m.layers[i]), linear(m, i))
