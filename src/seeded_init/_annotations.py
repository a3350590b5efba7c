"""Reading ``Annotated[..., seeded_init(...)]`` declarations and factory return types.

Annotations may be objects or, under ``from __future__ import annotations``, strings. A string
is evaluated as Python would evaluate it where the class is written: in the class namespace,
then the locals of the function whose body defines the class, then the module's globals.
"""

from __future__ import annotations

import ast
import inspect
import sys
import types
import typing
from collections import ChainMap
from collections.abc import Iterator, Mapping
from types import CodeType, FrameType
from typing import Annotated, Any

import typing_extensions

from ._errors import DeclarationError
from ._spec import InitSpec, seeded_init

__all__ = ["Scopes", "annotated_specs", "evaluate"]

_ANNOTATED = (Annotated, typing_extensions.Annotated)
_UNIONS: tuple[object, ...] = (typing.Optional, typing.Union)


class Scopes:
    """The names a class's string annotations can see (captured while the class is made)."""

    def __init__(self, cls: type) -> None:
        frame = _defining_frame(cls)
        module = sys.modules.get(cls.__module__)
        # The globals the class statement runs with (also code run by exec, whose module is
        # not in sys.modules), else its module's.
        self.globals: dict[str, Any] = (
            frame.f_globals if frame is not None else dict(vars(module)) if module else {}
        )
        self.locals: ChainMap[str, Any] = ChainMap(dict(vars(cls)))
        if frame is not None and frame.f_locals is not frame.f_globals:
            self.locals.maps.append(dict(frame.f_locals))

    def eval(self, node: ast.expr) -> object:
        code = compile(ast.Expression(node), "<annotation>", "eval")
        return eval(code, self.globals, self.locals)


def _defining_frame(cls: type) -> FrameType | None:
    """The frame running the ``class`` statement: its code holds the class body's code."""
    frame: FrameType | None = inspect.currentframe()
    for _ in range(64):
        if frame is None:
            return None
        if any(
            isinstance(c, CodeType) and c.co_name == cls.__name__ for c in frame.f_code.co_consts
        ):
            return frame
        frame = frame.f_back
    return None


def evaluate(annotation: object, scopes: Scopes) -> object:
    """An annotation as an object (None when a string names something not visible)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return scopes.eval(ast.parse(annotation, mode="eval").body)
    except Exception:
        return None


def annotated_specs(cls: type, scopes: Scopes) -> Iterator[tuple[str, InitSpec, object]]:
    """(name, spec, annotated type) of each ``Annotated[..., seeded_init(...)]`` in ``cls``,
    also inside ``Optional[...]`` or ``... | None``."""
    annotations: Mapping[str, object] = inspect.get_annotations(cls)
    for name, ann in annotations.items():
        where = f"{cls.__qualname__}.{name}"
        found = _from_string(ann, scopes, where) if isinstance(ann, str) else _from_object(ann)
        if found is None:
            _refuse_nested(ann if not isinstance(ann, str) else evaluate(ann, scopes), where)
            if isinstance(ann, str) and "seeded_init" in ann and evaluate(ann, scopes) is None:
                raise DeclarationError(
                    f"{where}: the annotation {ann!r} names seeded_init but cannot be evaluated "
                    f"where the class is written; write it as Annotated[Layer, seeded_init(...)]"
                    f" with names the class's module or enclosing function can see"
                )
            continue
        tp, metadata = found
        if any(m is seeded_init for m in metadata):
            raise DeclarationError(
                f"{where}: the marker is the function seeded_init itself; call it: "
                f"Annotated[..., seeded_init(scheme=...)]"
            )
        specs = [m for m in metadata if isinstance(m, InitSpec)]
        if len(specs) > 1:
            raise DeclarationError(
                f"{where} carries {len(specs)} seeded_init(...) markers; keep one"
            )
        if specs:
            yield name, specs[0], tp


def _refuse_nested(ann: object, where: str) -> None:
    """A marker anywhere below the top (``ClassVar[Annotated[...]]``, ``list[Annotated[...]]``)
    declares nothing: say so rather than ignore it."""
    for arg in typing.get_args(ann):
        if typing.get_origin(arg) in _ANNOTATED and any(
            isinstance(m, InitSpec) for m in getattr(arg, "__metadata__", ())
        ):
            raise DeclarationError(
                f"{where}: a seeded_init(...) marker inside {ann!r} declares nothing; write "
                f"Annotated[Layer, seeded_init(...)] as the whole annotation (or inside "
                f"Optional[...])"
            )
        _refuse_nested(arg, where)


def _from_object(ann: object) -> tuple[object, list[object]] | None:
    origin = typing.get_origin(ann)
    if origin in _ANNOTATED:
        return typing.get_args(ann)[0], list(getattr(ann, "__metadata__", ()))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(ann):
            found = _from_object(arg)
            if found is not None:
                return found
    return None


def _from_string(text: str, scopes: Scopes, where: str) -> tuple[object, list[object]] | None:
    """Like ``_from_object`` for a string annotation: ``Annotated[...]`` at the top, alone or
    as a member of ``Optional[...]``, ``Union[...]`` or ``... | None``."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(tree, ast.Constant) and isinstance(tree.value, str):  # a quoted annotation
        return _from_string(tree.value, scopes, where)
    for node in _members(tree, scopes):
        if not isinstance(node, ast.Subscript) or _head(node, scopes) not in _ANNOTATED:
            continue
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        metadata: list[object] = []
        for part in parts[1:]:
            try:
                metadata.append(scopes.eval(part))
            except NameError as exc:
                raise DeclarationError(
                    f"{where}: could not evaluate the annotation metadata "
                    f"{ast.unparse(part)!r} ({exc}); it may name module-level objects and "
                    f"locals of the function that defines the class"
                ) from exc
            except Exception as exc:
                raise DeclarationError(
                    f"{where}: the annotation metadata {ast.unparse(part)!r} raised {exc!r}"
                ) from exc
        try:
            tp = scopes.eval(parts[0])
        except Exception:
            tp = None  # a type named only where it cannot be seen: no run-time type check
        return tp, metadata
    return None


def _head(node: ast.Subscript, scopes: Scopes) -> object:
    try:
        return scopes.eval(node.value)
    except Exception:
        return None


def _members(node: ast.expr, scopes: Scopes) -> list[ast.expr]:
    """``node``, or the members of the union it spells."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _members(node.left, scopes) + _members(node.right, scopes)
    if isinstance(node, ast.Subscript) and _head(node, scopes) in _UNIONS:
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return [m for part in inner for m in _members(part, scopes)]
    return [node]
