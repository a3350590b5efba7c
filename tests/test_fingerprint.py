"""Fingerprints: digests of a model's values, checked against hashlib over numpy's bytes and
against a second process."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from seeded_init import Fingerprint, SeededModule, fingerprint, seeded_init

from .helpers import snapshot

TAG = b"seeded-init/fingerprint/v1\0"

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn
    from seeded_init import SeededModule, seeded_init

    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__(seed=5)
            self.emb = nn.Embedding(7, 4, padding_idx=0)
            self.norm = nn.BatchNorm1d(4)
            self.head = nn.Linear(4, 7, bias=False)
            self.head.weight = self.emb.weight

        @seeded_init(scheme="normal", std=0.02)
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4)
    """
)


def net() -> nn.Module:
    scope: dict[str, object] = {}
    exec(MODEL, scope)  # the module the second process builds, from the same text
    make = scope["Net"]
    assert isinstance(make, type) and issubclass(make, nn.Module)
    return make()


def by_hand(t: torch.Tensor) -> str:
    """The documented digest, from numpy's bytes (little-endian, row-major)."""
    data = t.detach().cpu().contiguous()
    raw = data.view(torch.uint8).numpy() if data.dtype == torch.bfloat16 else data.numpy()
    head = f"{t.dtype}\0{tuple(t.shape)}\0".encode()
    assert sys.byteorder == "little"  # numpy's bytes are the machine's; the digest's are little
    return hashlib.sha256(TAG + head + raw.tobytes()).hexdigest()


def test_digests_are_the_documented_sha256() -> None:
    m = net()
    fp = fingerprint(m)
    state = m.state_dict()
    assert list(fp.tensors) == list(state)  # tied names too, in state_dict order
    whole = hashlib.sha256(TAG + b"model\0")
    for name, t in state.items():
        assert fp.tensors[name] == by_hand(t), name
        key = name.encode()
        whole.update(len(key).to_bytes(8, "big") + key + by_hand(t).encode())
    assert fp.digest == whole.hexdigest() == str(fp)


def test_a_second_process_gets_the_same_fingerprint(tmp_path: Path) -> None:
    script = tmp_path / "second.py"
    script.write_text(MODEL + "\nfrom seeded_init import fingerprint\nprint(fingerprint(Net()))\n")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == fingerprint(net()).digest


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]
)
def test_values_not_layout(dtype: torch.dtype) -> None:
    """The same values give the same digest whatever the strides; the dtype is part of it."""
    values = (torch.arange(12).reshape(3, 4) % 3).to(dtype)
    m1, m2 = nn.Module(), nn.Module()
    m1.register_buffer("t", values.clone())
    m2.register_buffer("t", values.t().contiguous().t())  # transposed memory, same values
    assert not m2.get_buffer("t").is_contiguous()
    assert fingerprint(m1) == fingerprint(m2)
    assert fingerprint(m1).tensors["t"] == by_hand(values)
    other = nn.Module()
    other.register_buffer("t", values.to(torch.int32 if dtype != torch.int32 else torch.int64))
    assert fingerprint(other).digest != fingerprint(m1).digest


def test_differences_name_the_changed_tensors() -> None:
    a, b = net(), net()
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        b.state_dict()["fc.bias"][2] += 1e-7  # one element, the smallest change
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa.digest != fb.digest
    assert fa.differences(fb) == ("fc.bias",) == fb.differences(fa)
    c = net()
    c.extra = nn.Linear(2, 2)
    assert fingerprint(c).differences(fa) == ("extra.weight", "extra.bias")
    assert fa.differences(fingerprint(c)) == ("extra.weight", "extra.bias")


def test_channels_last_and_reset() -> None:
    """A reset model's fingerprint is its construction's; memory format does not count."""

    class Conv(SeededModule):
        @seeded_init(scheme="default")
        def conv(self) -> nn.Conv2d:
            return nn.Conv2d(3, 4, 3)

    m = Conv()
    first = fingerprint(m)
    m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    m.reset_parameters()
    assert fingerprint(m) == first


def test_a_meta_model_has_no_fingerprint() -> None:
    with torch.device("meta"):
        m = net()
    with pytest.raises(ValueError, match=r"'emb\.weight' is on the meta device.*to_empty"):
        fingerprint(m)


def test_a_quantized_tensor_is_refused() -> None:
    m = nn.Module()
    with warnings.catch_warnings():  # quantized tensors are deprecated in recent torch
        warnings.simplefilter("ignore")
        m.register_buffer("q", torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8))
    before = snapshot(m)
    with pytest.raises(ValueError, match=r"'q' is a quantized tensor"):
        fingerprint(m)
    assert torch.equal(m.get_buffer("q").int_repr(), before["q"].int_repr())


def test_the_record_is_frozen() -> None:
    fp = fingerprint(net())
    assert isinstance(fp, Fingerprint)
    with pytest.raises(AttributeError):
        fp.digest = "x"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(TypeError):
        fp.tensors["fc.bias"] = "x"  # type: ignore[index]  # pyright: ignore[reportIndexIssue]


def test_names_cannot_run_into_each_other() -> None:
    """One tensor whose name holds another's digest is not two tensors."""
    a, b = torch.ones(2), torch.zeros(3)
    two = nn.Module()
    two.register_buffer("a", a)
    two.register_buffer("b", b)
    one = nn.Module()
    one.register_buffer("a\0" + fingerprint(two).tensors["a"] + "\nb", b)
    assert fingerprint(one).digest != fingerprint(two).digest


def test_conjugate_and_negative_views_are_their_values() -> None:
    z = torch.randn(3, dtype=torch.complex64)
    lazy, plain = nn.Module(), nn.Module()
    lazy.register_buffer("z", z.conj())
    plain.register_buffer("z", z.conj().resolve_conj())
    assert lazy.get_buffer("z").is_conj()
    assert fingerprint(lazy) == fingerprint(plain)
    assert fingerprint(plain).tensors["z"] == by_hand(z.conj().resolve_conj())


def test_extra_state_is_left_out() -> None:
    class Stateful(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def get_extra_state(self) -> object:
            return {"step": 3}

        def set_extra_state(self, state: object) -> None:
            pass

    fp = fingerprint(Stateful())
    assert list(fp.tensors) == ["w"]
    assert fp.tensors["w"] == by_hand(torch.ones(2))


def test_a_lazy_parameter_has_no_fingerprint_yet() -> None:
    with pytest.raises(ValueError, match=r"'0.weight' is a lazy layer's parameter.*forward"):
        fingerprint(nn.Sequential(nn.LazyLinear(2)))
