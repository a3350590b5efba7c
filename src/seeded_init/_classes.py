"""Class definition: collect a SeededModule subclass's declarations once, check them, and
wrap its ``__init__`` so that construction can finish after the outermost ``__init__``.

The table of declarations is computed here, once per class, and inherited through the MRO:
a subclass keeps its bases' declarations (in their order) and may redeclare one by name.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import typing
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from torch import nn

from ._build import begin, end
from ._declare import DeclaredLayer, InitSpec
from ._errors import DeclarationError

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

    __init__._seeded_wrapped = True  # type: ignore[attr-defined]
    return __init__  # type: ignore[return-value]


def prepare_class(cls: type[SeededModule], base: type[SeededModule]) -> None:
    """Build ``cls._seeded_table`` and wrap ``cls.__init__``; raise on a bad declaration."""
    table: dict[str, DeclaredLayer[Any, Any]] = {}
    for klass in reversed(cls.__mro__[1:]):
        inherited = klass.__dict__.get("_seeded_table")
        if inherited:
            table.update(inherited)
    own: dict[str, DeclaredLayer[Any, Any]] = {}
    for name, value in cls.__dict__.items():
        if isinstance(value, DeclaredLayer):
            own[name] = value
        elif name in table:
            raise DeclarationError(
                f"{cls.__qualname__}.{name} replaces the declared layer {table[name]!r} with a "
                f"plain {type(value).__name__}; redeclare it with @seeded_init(...) instead"
            )
    for name, spec, tp in _annotated(cls):
        if name in own:
            raise DeclarationError(
                f"{cls.__qualname__}.{name} is declared twice (a decorated factory and an "
                f"Annotated attribute); keep one"
            )
        layer: DeclaredLayer[Any, Any] = DeclaredLayer(spec, None, annotation=tp)
        setattr(cls, name, layer)
        layer.__set_name__(cls, name)
        own[name] = layer
    for name, layer in own.items():
        where = f"{cls.__qualname__}.{name}"
        layer.spec.raise_problem(where)
        _check_name(cls, name, where)
        if layer.factory is not None:
            _check_factory(layer.factory, where)
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
    cls._seeded_table = MappingProxyType(table)
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
    if isinstance(factory, staticmethod | classmethod | property):
        raise DeclarationError(
            f"{where}: @seeded_init(...) decorates a plain method `def name(self) -> Layer`, "
            f"not a {type(factory).__name__}"
        )
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return
    required = [p for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params or len(required) > 1:
        raise DeclarationError(
            f"{where}: a layer factory takes only self, as in `def {where.rsplit('.', 1)[-1]}"
            f"(self) -> nn.Linear`; read sizes from attributes set in __init__"
        )


def _annotated(cls: type) -> Iterator[tuple[str, InitSpec, object]]:
    """(name, spec, annotated type) of each ``Annotated[..., seeded_init(...)]`` in ``cls``."""
    annotations: Mapping[str, object] = cls.__dict__.get("__annotations__", {})
    for name, ann in annotations.items():
        if isinstance(ann, str):
            found = _from_string(cls, name, ann)
        elif typing.get_origin(ann) is Annotated:
            found = (typing.get_args(ann)[0], list(getattr(ann, "__metadata__", ())))
        else:
            found = None
        if found is None:
            continue
        tp, metadata = found
        specs = [m for m in metadata if isinstance(m, InitSpec)]
        if len(specs) > 1:
            raise DeclarationError(
                f"{cls.__qualname__}.{name} carries {len(specs)} seeded_init(...) markers; keep one"
            )
        if specs:
            yield name, specs[0], tp


def _from_string(cls: type, name: str, text: str) -> tuple[object, list[object]] | None:
    """Evaluate the metadata of a string annotation (``from __future__ import annotations``)."""
    if "Annotated" not in text:
        return None
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Subscript):
        return None
    head = node.value
    if not (isinstance(head, ast.Name) and head.id == "Annotated"
            or isinstance(head, ast.Attribute) and head.attr == "Annotated"):
        return None
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    scopes = _Scopes(cls)
    metadata = []
    for part in parts[1:]:
        source = ast.unparse(part)
        try:
            metadata.append(scopes.eval(part))
        except Exception as exc:
            raise DeclarationError(
                f"{cls.__qualname__}.{name}: could not evaluate the annotation metadata "
                f"{source!r} ({exc!r}); name only module-level or enclosing-function objects in it"
            ) from exc
    try:
        tp = scopes.eval(parts[0])
    except Exception:
        tp = None  # a type named only locally: no run-time type check
    return tp, metadata


class _Scopes:
    """Module globals, then the class body, then the frames that are defining the class."""

    def __init__(self, cls: type) -> None:
        module = sys.modules.get(cls.__module__)
        self.globals: dict[str, Any] = dict(vars(module)) if module else {}
        self.locals: ChainMap[str, Any] = ChainMap(dict(vars(cls)))
        frame: FrameType | None = sys._getframe(1)
        for _ in range(32):
            if frame is None:
                break
            if frame.f_globals.get("__name__", "").startswith("seeded_init."):
                frame = frame.f_back
                continue
            self.locals.maps.append(dict(frame.f_locals))
            frame = frame.f_back

    def eval(self, node: ast.expr) -> object:
        code = compile(ast.Expression(node), "<annotation>", "eval")
        return eval(code, self.globals, self.locals)  # noqa: S307 (the user's own annotation)
