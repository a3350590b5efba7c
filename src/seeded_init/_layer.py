"""The layer descriptor a declaration becomes on its class, and its frozen record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from torch import nn
from typing_extensions import Self

from ._errors import ConstructionError, DeclarationError
from ._schemes import KwValue
from ._types import InitFn, SchemeName

if TYPE_CHECKING:
    from ._module import SeededModule
    from ._spec import InitSpec

__all__ = ["Declaration", "DeclaredLayer", "table_of"]

_T = TypeVar("_T", bound="nn.Module | nn.Parameter")


@dataclass(frozen=True)
class Declaration:
    """A declared layer, as :func:`declarations` reports it.

    Attributes:
        name: the attribute name (and state_dict prefix).
        owner: the qualified name of the class that declared it.
        spec: how it is initialized.
        form: ``"decorator"`` (a factory method) or ``"annotation"`` (``Annotated[...]``).
    """

    name: str
    owner: str
    spec: InitSpec
    form: Literal["decorator", "annotation"]


class DeclaredLayer(Generic[_T]):
    """A declared layer on its class: on an instance it is the layer, on the class the declaration.

    ``Net(8).fc1`` is the ``nn.Linear`` the factory built; ``Net.fc1`` is this object, with the
    declaration's ``name``, ``spec``, ``scheme``, ``seed`` and ``kwargs``.
    """

    def __init__(
        self,
        spec: InitSpec,
        factory: Callable[..., _T] | None,
        *,
        annotation: object = None,
    ) -> None:
        self.spec = spec
        self.factory = factory
        self.annotation = annotation  # the annotated type (annotation form), when resolvable
        self.name: str = ""
        self.owner: type[object] | None = None
        if factory is not None:
            self.__doc__ = getattr(factory, "__doc__", None)

    def __set_name__(self, owner: type[object], name: str) -> None:
        if "_seeded_table" not in dir(owner):
            raise DeclarationError(
                f"{owner.__qualname__}.{name}: @seeded_init(...) declares layers of a "
                f"SeededModule; make {owner.__qualname__} subclass seeded_init.SeededModule"
            )
        if self.owner is not None and (self.owner is not owner or self.name != name):
            raise DeclarationError(
                f"{owner.__qualname__}.{name}: this declaration is already "
                f"{self.owner.__qualname__}.{self.name}; write a new @seeded_init(...) for it"
            )
        self.owner, self.name = owner, name

    @property
    def form(self) -> Literal["decorator", "annotation"]:
        """``"decorator"`` for a factory method, ``"annotation"`` for ``Annotated[...]``."""
        return "annotation" if self.factory is None else "decorator"

    @property
    def scheme(self) -> SchemeName | InitFn:
        """The declared scheme."""
        return self.spec.scheme

    @property
    def seed(self) -> int | None:
        """The declared explicit seed, or None (derived)."""
        return self.spec.seed

    @property
    def kwargs(self) -> Mapping[str, KwValue]:
        """The scheme's keywords, defaults filled in."""
        return self.spec.kwargs

    def declaration(self) -> Declaration:
        """This declaration as a frozen record."""
        owner = self.owner.__qualname__ if self.owner is not None else "?"
        return Declaration(self.name, owner, self.spec, self.form)

    def __repr__(self) -> str:
        owner = self.owner.__qualname__ if self.owner is not None else "?"
        return f"<declared layer {owner}.{self.name}: {self.spec.describe()}>"

    @overload
    def __get__(self, instance: None, owner: type[object], /) -> Self: ...
    @overload
    def __get__(self, instance: SeededModule, owner: type[object], /) -> _T: ...
    def __get__(self, instance: SeededModule | None, owner: type[object], /) -> Self | _T:
        if instance is None:
            return self
        d = instance.__dict__
        for table in (d.get("_modules"), d.get("_parameters")):
            if table is not None and self.name in table:
                held: _T = table[self.name]
                return held
        from ._build import build_missing

        built: _T = build_missing(instance, self)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
        return built

    def __set__(self, instance: SeededModule, value: _T, /) -> None:
        # nn.Module.__setattr__ handles Modules and Parameters itself; only other values get here.
        if value is None:  # pyright: ignore[reportUnnecessaryComparison]  # None arrives at run time
            instance.__dict__["_modules"][self.name] = None
            return
        where = f"{type(instance).__qualname__}.{self.name}"
        parameter = isinstance(self.annotation, type) and issubclass(self.annotation, nn.Parameter)
        example = "nn.Parameter(tensor)" if parameter else "nn.Linear(...)"
        raise ConstructionError(
            f"{where} is a declared layer; it holds an nn.Module or nn.Parameter, not "
            f"{type(value).__name__}. Assign a layer, e.g. self.{self.name} = {example}"
        )


def table_of(cls: type) -> Mapping[str, DeclaredLayer[Any]]:
    """The declarations of a prepared SeededModule class, in declaration order."""
    table: Mapping[str, DeclaredLayer[Any]] = cls.__dict__["_seeded_table"]
    return table
