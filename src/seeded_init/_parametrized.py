"""Layers under ``torch.nn.utils.parametrize``: the declared init goes to the effective tensor.

A parametrized ``weight`` is computed from ``parametrizations.weight.original`` (or
``original0``, ``original1``... for weight_norm), so writing the originals with the declared
scheme would not give the declared weight, and writing ``module.weight`` is impossible. So
for the length of a reset, each parametrized tensor is replaced by a stand-in parameter of
its effective shape, and the ``parametrizations`` table is taken out: the layer looks, to the
plan, like the plain layer it was. The reset draws into the stand-in; then the value is
handed to the parametrizations' ``right_inverse`` (as ``module.weight = value`` does) and the
originals are written in place. The effective weight is then the declared one, as far as the
parametrization can hold it: weight_norm and orthogonal (given an orthogonal value) hold it
exactly up to rounding; spectral_norm holds it divided by its largest singular value, whose
estimate (the ``_u``, ``_v`` vectors) is drawn again from the layer's seed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._errors import PlanError
from ._execute import GLOBAL_RNG_LOCK, DrawFrom, global_rng_restored
from ._seeds import derive_seed
from ._torch import children, local_part, named_modules, params
from ._units import inside, join

__all__ = ["StandIn", "parametrized_tensors", "write_back"]


@dataclass(slots=True)
class StandIn:
    """A parametrized tensor ``module.<name>`` at ``path``, replaced by ``param`` for a reset."""

    module: nn.Module
    name: str
    path: str
    chain: nn.ModuleList  # the ParametrizationList
    param: nn.Parameter


def _parametrizations(m: nn.Module) -> nn.ModuleDict | None:
    table = children(m).get("parametrizations")
    return table if parametrize.is_parametrized(m) and isinstance(table, nn.ModuleDict) else None


def _check(m: nn.Module, path: str, name: str, chain: nn.Module) -> None:
    for p in chain.children():
        if not callable(getattr(p, "right_inverse", None)):
            raise PlanError(
                f"{join(path, name)!r} ({type(m).__name__}) is parametrized by "
                f"{type(p).__qualname__}, which has no right_inverse(), so seeded-init cannot "
                f"give the effective {name!r} its declared init; add a right_inverse() to "
                f"{type(p).__qualname__}, or register the parametrization after the reset"
            )
    if any(local_part(t)[1] is not None for t in chain.parameters()):
        raise PlanError(
            f"{join(path, name)!r} ({type(m).__name__}) is parametrized and sharded (DTensor); "
            f"seeded-init does not write through parametrizations of DTensors. Register the "
            f"parametrization after the reset"
        )


@contextmanager
def parametrized_tensors(root: nn.Module) -> Generator[list[StandIn], None, None]:
    """Replace each parametrized tensor of ``root``'s tree by a stand-in, for a reset.

    On exit the tables are put back; :func:`write_back` is the caller's to call first, for
    a reset that wrote the stand-ins.

    Raises:
        PlanError: a parametrization that cannot take a value (no ``right_inverse``).
    """
    found: list[tuple[nn.Module, str, nn.ModuleDict]] = []
    for path, m in named_modules(root):
        table = _parametrizations(m)
        if table is None:
            continue
        for name, chain in children(table).items():
            if chain is not None:
                _check(m, path, name, chain)
        found.append((m, path, table))
    stand_ins: list[StandIn] = []
    try:
        for m, path, table in found:
            for name, chain in children(table).items():
                assert isinstance(chain, nn.ModuleList)
                with torch.no_grad():
                    value = getattr(m, name).detach()
                param = nn.Parameter(value.clone(), requires_grad=value.requires_grad)
                stand_ins.append(StandIn(m, name, join(path, name), chain, param))
            del children(m)["parametrizations"]
            own = params(m)
            rest = dict(own)
            own.clear()  # the stand-ins first, where a layer's weight stands
            own.update({s.name: s.param for s in stand_ins if s.module is m}, **rest)
        yield stand_ins
    finally:
        for m, _, table in found:
            for s in stand_ins:
                if s.module is m:
                    params(m).pop(s.name, None)
            children(m)["parametrizations"] = table


def write_back(stand_ins: list[StandIn], within: str, root_seed: int) -> None:
    """Hand each stand-in under ``within`` to its parametrizations' ``right_inverse`` and
    write the originals in place (call with the tables put back)."""
    for s in stand_ins:
        if not (inside(s.path, within) or inside(within, s.path)) or s.param.is_meta:
            continue
        g = torch.Generator()
        g.manual_seed(derive_seed(root_seed, s.path + "/parametrizations"))
        with GLOBAL_RNG_LOCK, global_rng_restored(), torch.no_grad(), DrawFrom(g):
            torch.default_generator.set_state(g.get_state())
            _assign(s, g)


def _assign(s: StandIn, g: torch.Generator) -> None:
    value: torch.Tensor | tuple[torch.Tensor, ...] = s.param.detach()
    for p in reversed(list(s.chain.children())):
        if isinstance(value, torch.Tensor) and _is_spectral(p):
            _redraw_spectral(p, value, g)
        inverse: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]]
        inverse = p.right_inverse  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
        assert isinstance(value, torch.Tensor)
        value = inverse(value)
    originals = params(s.chain)
    if isinstance(value, torch.Tensor):
        targets = [("original", value)]
    else:
        targets = [(f"original{i}", v) for i, v in enumerate(value)]
    for name, new in targets:
        original = originals[name]
        assert original is not None
        if new.shape != original.shape:
            raise PlanError(
                f"{s.path!r}: the right_inverse() of its parametrizations gave {name} the shape "
                f"{tuple(new.shape)}, not its shape {tuple(original.shape)}"
            )
        original.copy_(new)


def _is_spectral(p: nn.Module) -> bool:
    from torch.nn.utils.parametrizations import (
        _SpectralNorm,  # pyright: ignore[reportPrivateUsage]
    )

    return isinstance(p, _SpectralNorm)


def _redraw_spectral(p: nn.Module, weight: torch.Tensor, g: torch.Generator) -> None:
    """Draw spectral_norm's ``_u`` and ``_v`` again, as registering it draws them (from the
    global RNG, there), from ``g`` on the CPU, and run its 15 power iterations."""
    if weight.ndim <= 1:
        return
    reshape: Callable[[torch.Tensor], torch.Tensor] = p._reshape_weight_to_matrix  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    power: Callable[[torch.Tensor, int], None] = p._power_method  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    eps = float(p.eps)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    mat = reshape(weight)
    h, w = mat.shape
    for name, n in (("_u", h), ("_v", w)):
        buf = p.get_buffer(name)
        draw = torch.empty(n, dtype=buf.dtype).normal_(0, 1, generator=g)
        buf.copy_(nn.functional.normalize(draw, dim=0, eps=eps).to(buf.device))
    power(mat, 15)
