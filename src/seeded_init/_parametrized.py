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

User code runs here (a parametrization's forward and ``right_inverse``), so it runs with
the global RNG saved and restored, and in two phases: :func:`inverses` computes every value
to write, writing nothing, and may fail (the caller then puts back what the reset wrote);
:func:`write_back` only copies.
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
from ._torch import (
    buffers,
    children,
    local_part,
    named_modules,
    params,
    span,
    uninitialized,
)
from ._units import inside, join

__all__ = [
    "Pending",
    "StandIn",
    "inverses",
    "parametrized_tensors",
    "remember_order",
    "write_back",
]


@dataclass(slots=True)
class StandIn:
    """A parametrized tensor ``module.<name>`` at ``path``, replaced by ``param`` for a reset."""

    module: nn.Module
    name: str
    path: str
    chain: nn.ModuleList  # the ParametrizationList
    param: nn.Parameter


@dataclass(frozen=True, slots=True)
class Pending:
    """What :func:`write_back` copies for one stand-in: ``(target, value)`` pairs, and the
    power iterations of a spectral_norm to run once its vectors are written."""

    copies: list[tuple[torch.Tensor, torch.Tensor]]
    power: list[Callable[[], None]]


def _parametrizations(m: nn.Module) -> nn.ModuleDict | None:
    table = children(m).get("parametrizations")
    return table if parametrize.is_parametrized(m) and isinstance(table, nn.ModuleDict) else None


def _where(m: nn.Module, path: str, name: str) -> str:
    """``'fc.weight' (Linear)``: the layer's own class, not parametrize's subclass of it."""
    cls = type(m)
    if cls.__bases__ and cls.__name__ == f"Parametrized{cls.__bases__[0].__name__}":
        cls = cls.__bases__[0]
    return f"{join(path, name)!r} ({cls.__name__})"


def _check(m: nn.Module, path: str, name: str, chain: nn.Module) -> None:
    where = _where(m, path, name)
    for p in chain.children():
        kind = type(p).__qualname__
        if not callable(getattr(p, "right_inverse", None)):
            raise PlanError(
                f"{where} is parametrized by {kind}, which has no right_inverse(), so "
                f"seeded-init cannot give the effective {name!r} its declared init; add a "
                f"right_inverse() to {kind}, or register the parametrization after the reset"
            )
        own = [n for n, _ in p.named_parameters()]
        if own:
            raise PlanError(
                f"{where} is parametrized by {kind}, which has parameters of its own "
                f"({', '.join(repr(n) for n in own)}) that seeded-init cannot initialize "
                f"reproducibly; make them buffers, or register the parametrization after the "
                f"reset"
            )
    if name in buffers(m) or not any(n.startswith("original") for n in params(chain)):
        raise PlanError(
            f"{where} is a parametrized buffer; seeded-init writes through parametrizations "
            f"of parameters only. Register the parametrization after the reset"
        )
    if any(local_part(t)[1] is not None for t in chain.parameters()):
        raise PlanError(
            f"{where} is parametrized and sharded (DTensor); seeded-init does not write "
            f"through parametrizations of DTensors. Register the parametrization after the reset"
        )


class _BufferState:
    """The buffers of some modules, as objects and as values, to put back after user code
    that may write them in place or assign new ones (orthogonal's right_inverse does)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.tables = [(buffers(m), dict(buffers(m))) for m in modules]
        self.values = [
            (t, t.detach().clone())
            for _, table in self.tables
            for t in table.values()
            if t is not None and not t.is_meta
        ]

    def restore(self) -> None:
        with torch.no_grad():
            for live, kept in self.tables:
                live.clear()
                live.update(kept)
            for t, old in self.values:
                t.copy_(old)


@contextmanager
def _user_code(g: torch.Generator | None = None) -> Generator[None, None, None]:
    """Run a parametrization's code with the global RNG restored after (seeded from ``g``,
    and ``g`` given to random calls that take a generator, where there is one)."""
    with GLOBAL_RNG_LOCK, global_rng_restored(), torch.no_grad():
        if g is None:
            yield
            return
        torch.default_generator.set_state(g.get_state())
        with DrawFrom(g):
            yield


def _effective(m: nn.Module, path: str, name: str, chain: nn.Module) -> torch.Tensor:
    """The parametrized tensor's current value, computed without changing anything (a
    spectral_norm in training mode would advance its power iteration on each read)."""
    saved = _BufferState(list(chain.modules()))
    try:
        with _user_code():
            value: torch.Tensor = getattr(m, name).detach().clone()
    except Exception as exc:
        raise PlanError(
            f"{_where(m, path, name)}: computing it through its parametrizations failed: "
            f"{exc!r}; fix the parametrization's forward, or register it after the reset"
        ) from exc
    finally:
        saved.restore()
    return value


@contextmanager
def parametrized_tensors(root: nn.Module) -> Generator[list[StandIn], None, None]:
    """Replace each parametrized tensor of ``root``'s tree by a stand-in, for a reset.

    On exit the tables are put back; :func:`inverses` and :func:`write_back` are the
    caller's, for a reset that wrote the stand-ins.

    Raises:
        PlanError: a parametrization that cannot take a value (no ``right_inverse``, its
            own parameters, DTensors) or whose forward fails; nothing was changed.
    """
    found: list[tuple[nn.Module, nn.ModuleDict, list[StandIn]]] = []
    held: Spans | None = None  # found only for a model that has parametrizations
    originals: Spans = {}
    for path, m in named_modules(root):
        table = _parametrizations(m)
        if table is None:
            continue
        if held is None:
            held = _held_outside_parametrizations(root)
        mine: list[StandIn] = []
        for name, chain in children(table).items():
            assert isinstance(chain, nn.ModuleList)
            _check(m, path, name, chain)
            _check_untied(m, path, name, chain, held, originals)
            value = _effective(m, path, name, chain)
            param = nn.Parameter(value, requires_grad=value.requires_grad)
            mine.append(StandIn(m, name, join(path, name), chain, param))
        found.append((m, table, mine))
    try:
        for m, _, mine in found:
            del children(m)["parametrizations"]
            _insert(m, {s.name: s.param for s in mine})
        yield [s for _, _, mine in found for s in mine]
    finally:
        for m, table, mine in found:
            for s in mine:
                params(m).pop(s.name, None)
            children(m)["parametrizations"] = table


def remember_order(m: nn.Module, name: str | None = None) -> None:
    """Note ``m``'s parameter names in registration order (``name`` added, when given), so
    that a tensor parametrized later (parametrize removes it from ``m``) is reset in its
    place: a layer draws its parameters in that order."""
    order: list[str] | None = m.__dict__.get("_seeded_order")
    if order is None:
        # An RNN lists its registration order itself, also once a tensor is parametrized away.
        order = m.__dict__["_seeded_order"] = list(m.__dict__.get("_flat_weights_names", []))
    for n in (*params(m), *((name,) if name else ())):
        if n not in order:
            order.append(n)


def _insert(m: nn.Module, stand_ins: dict[str, nn.Parameter]) -> None:
    """Register the stand-ins among ``m``'s parameters where their tensors stood (first,
    where that order was never seen: a layer's weight comes first)."""
    remember_order(m)  # a no-op where the order was seen before the parametrization
    order: list[str] = m.__dict__["_seeded_order"]
    own = params(m)
    rest = dict(own)
    placed: dict[str, nn.Parameter | None] = {}
    for n in order:
        if n in stand_ins or n in rest:
            placed[n] = stand_ins[n] if n in stand_ins else rest[n]
    unseen = {n: p for n, p in stand_ins.items() if n not in placed}
    own.clear()
    own.update(unseen)
    own.update(placed)
    own.update({n: p for n, p in rest.items() if n not in own})


Spans = dict[tuple[str, int], list[tuple[int, int, str]]]


def _add(spans: Spans, t: torch.Tensor, path: str) -> None:
    if not uninitialized(t) and not t.is_meta and t.numel():
        key, start, stop = span(local_part(t)[0])
        spans.setdefault(key, []).append((start, stop, path))


def _overlapping(spans: Spans, t: torch.Tensor) -> str | None:
    """The path of a tensor in ``spans`` whose memory overlaps ``t``'s, or None."""
    if uninitialized(t) or t.is_meta or not t.numel():
        return None
    key, start, stop = span(local_part(t)[0])
    for first, last, path in spans.get(key, []):
        if first < stop and start < last:
            return path
    return None


def _held_outside_parametrizations(root: nn.Module) -> Spans:
    """Where the tensors that live outside parametrize's tables lie in memory, by path."""
    inner: set[int] = set()
    held: Spans = {}
    for path, m in named_modules(root):
        if isinstance(m, parametrize.ParametrizationList):
            inner.update(id(x) for x in m.modules())
        if id(m) in inner:
            continue
        for name, t in [*params(m).items(), *buffers(m).items()]:
            if t is not None:
                _add(held, t, join(path, name))
    return held


def _check_untied(
    m: nn.Module, path: str, name: str, chain: nn.Module, held: Spans, originals: Spans
) -> None:
    """Refuse a parametrized tensor whose originals share memory with a tensor outside it,
    or with another parametrized tensor's originals (both sides of a tie parametrized): its
    stand-in would be initialized apart and then written over the other tensor."""
    for t in chain.parameters(recurse=False):
        other = _overlapping(held, t)
        other = other if other is not None else _overlapping(originals, t)
        if other is not None:
            raise PlanError(
                f"{_where(m, path, name)} is parametrized, and its original shares memory with "
                f"{other!r}: one tensor cannot take two inits. Tie the effective weights "
                f"after the reset, or parametrize the layer before tying"
            )
    for t in chain.parameters(recurse=False):
        _add(originals, t, join(path, name))


def inverses(stand_ins: list[StandIn], within: str, root_seed: int) -> list[Pending]:
    """What to write for each stand-in under ``within``: its value handed back through the
    parametrizations' ``right_inverse`` chain. Writes nothing.

    Raises:
        PlanError: a ``right_inverse`` failed or gave values the originals cannot take.
    """
    chosen = [
        s
        for s in stand_ins
        if (inside(s.path, within) or inside(within, s.path)) and not s.param.is_meta
    ]
    saved = _BufferState([m for s in chosen for m in s.chain.modules()])
    pending: list[Pending] = []
    for s in chosen:
        g = torch.Generator()
        g.manual_seed(derive_seed(root_seed, s.path + "/parametrizations"))
        try:
            with _user_code(g):
                pending.append(_inverse(s, g))
        except Exception as exc:
            saved.restore()
            if isinstance(exc, PlanError):
                raise
            raise PlanError(
                f"{_where(s.module, '', s.path)}: handing the declared value to its "
                f"parametrizations' right_inverse() failed: {exc!r}; fix that "
                f"right_inverse(), or register the parametrization after the reset"
            ) from exc
    return pending


def write_back(pending: list[Pending]) -> None:
    """Copy what :func:`inverses` computed (call with the tables put back)."""
    with torch.no_grad():
        for p in pending:
            for target, value in p.copies:
                target.copy_(value)
            for power in p.power:
                power()


def _inverse(s: StandIn, g: torch.Generator) -> Pending:
    copies: list[tuple[torch.Tensor, torch.Tensor]] = []
    power: list[Callable[[], None]] = []
    value: object = s.param.detach()
    for p in reversed(list(s.chain.children())):
        if not isinstance(value, torch.Tensor):
            raise PlanError(
                f"{_where(s.module, '', s.path)}: a parametrization before "
                f"{type(p).__qualname__} gave its right_inverse() a {type(value).__name__}, "
                f"not a tensor; make each right_inverse() but the first return one tensor"
            )
        if _is_spectral(p):
            _redraw_spectral(p, value, g, copies, power)
        inverse: Callable[[torch.Tensor], object] = p.right_inverse  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
        value = inverse(value)
    originals = {n: t for n, t in params(s.chain).items() if t is not None}
    given = _named(value)
    if set(given) != set(originals):
        raise PlanError(
            f"{_where(s.module, '', s.path)}: the right_inverse() of its parametrizations "
            f"gave {_described(value)}, where its originals are {sorted(originals)}; make "
            f"it return one tensor per original"
        )
    for name, new in given.items():
        original = originals[name]
        if new.shape != original.shape or new.dtype != original.dtype:
            raise PlanError(
                f"{_where(s.module, '', s.path)}: the right_inverse() of its "
                f"parametrizations gave {name} {tuple(new.shape)} {new.dtype}, not its "
                f"{tuple(original.shape)} {original.dtype}; make it return the original's "
                f"shape and dtype"
            )
        copies.append((original, new.detach().clone()))
    return Pending(copies, power)


def _named(value: object) -> dict[str, torch.Tensor]:
    """A right_inverse's result by the original it is for: a tensor is ``original``, a
    sequence of tensors ``original0``, ``original1``..., anything else nothing."""
    if isinstance(value, torch.Tensor):
        return {"original": value}
    items: list[object] = list(value) if isinstance(value, tuple | list) else []  # pyright: ignore[reportUnknownArgumentType]
    tensors = [v for v in items if isinstance(v, torch.Tensor)]
    if not tensors or len(tensors) != len(items):
        return {}
    return {f"original{i}": v for i, v in enumerate(tensors)}


def _described(value: object) -> str:
    kind = type(value).__name__
    if isinstance(value, torch.Tensor):
        return "one tensor"
    if isinstance(value, tuple | list):
        n: int = len(value)  # pyright: ignore[reportUnknownArgumentType]
        return f"a {kind} of {n}"
    return f"a {kind}"


def _is_spectral(p: nn.Module) -> bool:
    from torch.nn.utils.parametrizations import (
        _SpectralNorm,  # pyright: ignore[reportPrivateUsage]
    )

    return isinstance(p, _SpectralNorm)


def _redraw_spectral(
    p: nn.Module,
    weight: torch.Tensor,
    g: torch.Generator,
    copies: list[tuple[torch.Tensor, torch.Tensor]],
    power: list[Callable[[], None]],
) -> None:
    """spectral_norm's ``_u`` and ``_v``, drawn again as registering it draws them (from the
    global RNG, there), from ``g`` on the CPU, and its 15 power iterations to run after."""
    if weight.ndim <= 1:
        return
    reshape: Callable[[torch.Tensor], torch.Tensor] = p._reshape_weight_to_matrix  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    method: Callable[[torch.Tensor, int], None] = p._power_method  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    eps = float(p.eps)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    mat = reshape(weight).detach().clone()
    for name, n in (("_u", mat.shape[0]), ("_v", mat.shape[1])):
        buf = p.get_buffer(name)
        draw = torch.empty(n, dtype=buf.dtype).normal_(0, 1, generator=g)
        copies.append((buf, nn.functional.normalize(draw, dim=0, eps=eps).to(buf.device)))
    power.append(lambda: method(mat.to(p.get_buffer("_u").device), 15))
