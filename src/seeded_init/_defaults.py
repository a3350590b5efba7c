"""PyTorch's own init algorithm of each layer type, replayed with a generator.

For every type listed here, the steps of ``default_steps`` draw in exactly the order and with
exactly the bounds of the type's constructor in torch, so that for a generator seeded ``s`` the
values are bitwise those of ``torch.manual_seed(s); Layer(...)``. A layer whose class overrides
the init method of its base is not replayed: its own method runs (see ``_plan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.rnn import RNNBase, RNNCellBase

from ._errors import PlanError
from ._fills import Constant, KaimingUniform, Normal, Ones, Uniform, Zeros
from ._schemes import Fill
from ._steps import Step
from ._torch import ConvNd, NormBase, buffers, children, fan_in, is_lazy, params

__all__ = ["Handler", "default_handler", "plan_attributes"]

#: Given a layer and its path: its steps, and the names of the children those steps cover.
Handler = Callable[[nn.Module, str], tuple[list[Step], frozenset[str]]]

_SQRT5 = math.sqrt(5)
_NONE: frozenset[str] = frozenset()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _step(m: nn.Module, path: str, attr: str, fill: Fill, rule: str, draws: bool = True) -> Step:
    return Step(m, attr, _join(path, attr), fill, draws, rule)


_kaiming_a_sqrt5 = KaimingUniform(_SQRT5)
_ones = Ones()
_zeros = Zeros()


def _uniform(bound: float) -> Fill:
    return Uniform(-bound, bound)


def _weight(m: nn.Module, path: str) -> torch.Tensor:
    """The layer's weight, which its PyTorch algorithm reads."""
    weight = params(m).get("weight")
    if weight is None:
        kind = type(m).__name__
        raise PlanError(
            f"{path or 'the model'} ({kind}) has no weight parameter, which PyTorch's {kind} "
            f"init reads; register one again (layer.weight = nn.Parameter(...)), or declare "
            f"the layer with a scheme in its parent"
        )
    return weight


def _weight_bias_fan(m: nn.Module, path: str) -> list[Step]:
    """Linear and convolutions: kaiming_uniform(a=sqrt(5)), bias uniform(+-1/sqrt(fan_in))."""
    weight = _weight(m, path)
    steps = [_step(m, path, "weight", _kaiming_a_sqrt5, "kaiming_uniform(a=sqrt(5))")]
    if params(m).get("bias") is not None:
        fan = fan_in(weight) if weight.dim() >= 2 else 0
        bound = 1 / math.sqrt(fan) if fan > 0 else 0
        steps.append(_step(m, path, "bias", _uniform(bound), f"uniform(+-{bound:.4g})"))
    return steps


def _linear(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    return _weight_bias_fan(m, path), _NONE


def _bilinear(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    weight = _weight(m, path)
    bound = 1 / math.sqrt(weight.size(1))
    rule = f"uniform(+-{bound:.4g})"
    steps = [_step(m, path, "weight", _uniform(bound), rule)]
    if params(m).get("bias") is not None:
        steps.append(_step(m, path, "bias", _uniform(bound), rule))
    return steps, _NONE


def _embedding(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    fill = Normal(0.0, 1.0)
    padding = getattr(m, "padding_idx", None)
    step = Step(
        m,
        "weight",
        _join(path, "weight"),
        fill,
        True,
        "normal(std=1)",
        zero_row=None if padding is None else int(padding),
    )
    return [step], _NONE


def _affine_norm(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    steps: list[Step] = []
    if params(m).get("weight") is not None:
        steps.append(_step(m, path, "weight", _ones, "ones", draws=False))
    if params(m).get("bias") is not None:
        steps.append(_step(m, path, "bias", _zeros, "zeros", draws=False))
    return steps, _NONE


def _batch_norm(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    steps = [
        Step(m, name, _join(path, name), fill, False, rule, buffer=True)
        for name, fill, rule in (
            ("running_mean", _zeros, "zeros"),
            ("running_var", _ones, "ones"),
            ("num_batches_tracked", _zeros, "zeros"),
        )
        if buffers(m).get(name) is not None
    ]
    return steps + _affine_norm(m, path)[0], _NONE


def _rnn(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    hidden = int(vars(m)["hidden_size"])
    stdv = 1.0 / math.sqrt(hidden) if hidden > 0 else 0
    rule = f"uniform(+-{stdv:.4g})"
    steps = [_step(m, path, n, _uniform(stdv), rule) for n, p in params(m).items() if p is not None]
    return steps, _NONE


def _mha(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    # The constructor builds out_proj (a Linear, which draws) before _reset_parameters runs.
    out = children(m)["out_proj"]
    assert out is not None
    steps = _weight_bias_fan(out, _join(path, "out_proj"))
    xavier_u: Fill = lambda t, g: nn.init.xavier_uniform_(t, generator=g)  # noqa: E731
    xavier_n: Fill = lambda t, g: nn.init.xavier_normal_(t, generator=g)  # noqa: E731
    names = (
        ("in_proj_weight",)
        if vars(m)["_qkv_same_embed_dim"]
        else ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    )
    steps += [_step(m, path, n, xavier_u, "xavier_uniform") for n in names]
    if params(m).get("in_proj_bias") is not None:
        steps.append(_step(m, path, "in_proj_bias", _zeros, "zeros", draws=False))
        if params(out).get("bias") is not None:
            steps.append(_step(out, _join(path, "out_proj"), "bias", _zeros, "zeros", draws=False))
    for n in ("bias_k", "bias_v"):
        if params(m).get(n) is not None:
            steps.append(_step(m, path, n, xavier_n, "xavier_normal"))
    return steps, frozenset({"out_proj"})


def _prelu(m: nn.Module, path: str) -> tuple[list[Step], frozenset[str]]:
    value = float(vars(m)["init"])
    return [_step(m, path, "weight", Constant(value), f"constant({value})", draws=False)], _NONE


# (base class, the method whose algorithm we replay, handler, the attributes of the layer
# the handler reads besides its tensors); the first isinstance match wins. A cached plan is
# valid while those attributes hold the values it was built from (see ``_cache``).
_TABLE: list[tuple[type[nn.Module], str, Handler, tuple[str, ...]]] = [
    (nn.MultiheadAttention, "_reset_parameters", _mha, ("_qkv_same_embed_dim",)),
    (nn.Bilinear, "reset_parameters", _bilinear, ()),
    (nn.Linear, "reset_parameters", _linear, ()),
    (ConvNd, "reset_parameters", _linear, ()),
    (nn.Embedding, "reset_parameters", _embedding, ("padding_idx",)),
    (nn.EmbeddingBag, "reset_parameters", _embedding, ("padding_idx",)),
    (nn.LayerNorm, "reset_parameters", _affine_norm, ()),
    (nn.GroupNorm, "reset_parameters", _affine_norm, ()),
    (NormBase, "reset_parameters", _batch_norm, ()),
    (RNNBase, "reset_parameters", _rnn, ("hidden_size",)),
    (RNNCellBase, "reset_parameters", _rnn, ("hidden_size",)),
    (nn.PReLU, "reset_parameters", _prelu, ("init",)),
]
if hasattr(nn, "RMSNorm"):
    _TABLE.insert(7, (nn.RMSNorm, "reset_parameters", _affine_norm, ()))


def default_handler(m: nn.Module) -> Handler | None:
    """The replay of ``m``'s PyTorch algorithm, or None if its type is not known here.

    A subclass that overrides the init method gets None: its own method is the truth. Lazy
    layers override ``reset_parameters`` only to wait for their shape, so they keep the replay.
    """
    lazy = is_lazy(m)
    for base, method, handler, _ in _TABLE:
        if isinstance(m, base):
            if lazy or getattr(type(m), method, None) is getattr(base, method):
                return handler
            return None
    return None


def plan_attributes(cls: type[nn.Module]) -> tuple[str, ...]:
    """The attributes (besides tensors) that a plan for a layer of type ``cls`` reads: its
    handler's, and ``padding_idx``, which every scheme keeps at zero for an embedding."""
    for base, _, _, names in _TABLE:
        if issubclass(cls, base):
            return names
    return ()
