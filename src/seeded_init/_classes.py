"""Class definition: collect a SeededModule subclass's declarations once, check them, and
wrap its ``__init__`` so that construction can finish after the outermost ``__init__``.

The table of declarations is computed here, once per class, and inherited through the MRO:
a subclass keeps its bases' declarations (in their order) and may redeclare one by name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from ._annotations import Scopes, annotated_specs, evaluate
from ._build import begin, end
from ._errors import DeclarationError
from ._layer import DeclaredLayer

if TYPE_CHECKING:
    from ._module import SeededModule

__all__ = ["prepare_class", "wraps_construction"]

_F = TypeVar("_F", bound=Callable[..., None])

# Attributes every nn.Module instance sets in __init__ (class attributes are checked via the MRO).
_MODULE_INSTANCE_ATTRS = frozenset(nn.Module().__dict__)


def wraps_construction(init: _F) -> _F:
    """Wrap an ``__init__`` so that the outermost call finishes the construction."""
    if getattr(init, "_seeded_wrapped", False):
        return init

    @functools.wraps(init)
    def __init__(self: SeededModule, *args: Any, **kwargs: Any) -> None:
        begin(self)
        ok = False
        try:
            init(self, *args, **kwargs)
            ok = True
        finally:
            end(self, ok)

    vars(__init__)["_seeded_wrapped"] = True
    wrapped: _F = __init__  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    return wrapped


def prepare_class(cls: type[SeededModule], base: type[SeededModule]) -> None:
    """Build ``cls._seeded_table`` and wrap ``cls.__init__``; raise on a bad declaration."""
    table: dict[str, DeclaredLayer[Any]] = {}
    for klass in reversed(cls.__mro__[1:]):
        inherited = klass.__dict__.get("_seeded_table")
        if inherited:
            table.update(inherited)
    own: dict[str, DeclaredLayer[Any]] = {}
    for name, value in cls.__dict__.items():
        if isinstance(value, DeclaredLayer):
            own[name] = value
        elif name in table:
            raise DeclarationError(
                f"{cls.__qualname__}.{name} replaces the declared layer {table[name]!r} with a "
                f"plain {type(value).__name__}; redeclare it with @seeded_init(...) instead"
            )
    scopes = Scopes(cls)
    for name, spec, tp in annotated_specs(cls, scopes):
        if name in own:
            raise DeclarationError(
                f"{cls.__qualname__}.{name} is declared twice (a decorated factory and an "
                f"Annotated attribute); keep one"
            )
        # Not set on the class: the attribute is the instance's, as type checkers see it
        # (``Net.fc`` is an AttributeError, as for any nn.Module attribute); see declarations().
        layer: DeclaredLayer[Any] = DeclaredLayer(spec, None, annotation=tp)
        layer.__set_name__(cls, name)
        own[name] = layer
    for name, layer in own.items():
        where = f"{cls.__qualname__}.{name}"
        layer.spec.raise_problem(where)
        _check_name(cls, name, where)
        if layer.factory is not None:
            _check_factory(layer.factory, where)
            returns = getattr(layer.factory, "__annotations__", {}).get("return")
            layer.annotation = evaluate(returns, scopes)
        table[name] = layer
    if cls.reset_parameters is not base.reset_parameters:
        source = next(k for k in cls.__mro__ if "reset_parameters" in k.__dict__)
        if source is cls:
            raise DeclarationError(
                f"{cls.__qualname__} overrides reset_parameters, so its declarations would be "
                f"bypassed; declare each layer's init with @seeded_init(...) instead of "
                f"overriding it"
            )
        raise DeclarationError(
            f"{cls.__qualname__}: reset_parameters comes from {source.__qualname__}, not from "
            f"SeededModule, so declarations would be bypassed; list SeededModule first: "
            f"class {cls.__name__}(SeededModule, {source.__name__})"
        )
    type.__setattr__(cls, "_seeded_table", MappingProxyType(table))
    # Wrap the __init__ that runs first, even one inherited from another base listed before
    # SeededModule (class M(nn.Sequential, SeededModule)), so construction ends after it.
    if not getattr(cls.__init__, "_seeded_wrapped", False):
        cls.__init__ = wraps_construction(cls.__init__)  # type: ignore[method-assign]


def _check_name(cls: type, name: str, where: str) -> None:
    clash = name in _MODULE_INSTANCE_ATTRS or any(
        name in klass.__dict__ and not isinstance(klass.__dict__[name], DeclaredLayer)
        for klass in cls.__mro__[1:]
    )
    if clash or name.startswith("_seeded"):
        raise DeclarationError(
            f"{where}: the name {name!r} is already an attribute of nn.Module or of a base "
            f"class, and a layer cannot replace it; rename the layer, e.g. {name}_layer"
        )


def _check_factory(factory: Callable[..., Any], where: str) -> None:
    if isinstance(factory, property) or type(factory) in (staticmethod, classmethod):
        raise DeclarationError(
            f"{where}: @seeded_init(...) decorates a plain method `def name(self) -> Layer`, "
            f"not a {type(factory).__name__}"
        )
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not params or len(required) > 1:
        raise DeclarationError(
            f"{where}: a layer factory takes only self, as in `def {where.rsplit('.', 1)[-1]}"
            f"(self) -> nn.Linear`; read sizes from attributes set in __init__"
        )
