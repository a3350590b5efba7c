"""Declarations: ``seeded_init(...)``, the spec record it returns, and the layer descriptor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, overload

from torch import nn
from typing_extensions import Self

from ._errors import ConstructionError, DeclarationError
from ._schemes import KwValue, check_kwargs, rule_text
from ._seeds import check_seed
from ._types import FanMode, InitFn, Nonlinearity, SchemeName

if TYPE_CHECKING:
    from ._module import SeededModule

__all__ = ["Declaration", "DeclaredLayer", "InitSpec", "PartInit", "Scalar", "seeded_init"]

_S = TypeVar("_S", bound="SeededModule")
_T = TypeVar("_T", bound="nn.Module | nn.Parameter")

#: A number keyword: a float, or a function of the declaring module (the SeededModule whose
#: class holds the declaration) that returns it, called when the plan is made; e.g.
#: ``std=lambda block: 0.02 / math.sqrt(2 * block.n_layer)``.
Scalar: TypeAlias = "float | Callable[[Any], float]"

#: What ``bias=`` and the values of ``params=`` accept: a scheme name, a function, or a spec
#: made by ``seeded_init(...)`` (to pass keywords, or a seed of its own).
PartInit: TypeAlias = "SchemeName | InitFn | InitSpec"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class InitSpec:
    """How one layer is initialized. Made by :func:`seeded_init`; read it, don't build it.

    Attributes:
        scheme: a scheme name, or a function ``(tensor, generator) -> None``.
        seed: the layer's explicit seed, or None to derive it from the root seed and the path.
        kwargs: the scheme's keywords, defaults filled in.
        bias: the rule for the layer's biases, or None for the documented default (``zeros``;
            PyTorch's own rule under ``"default"``).
        params: per-part rules, keyed by a parameter name (``"weight_hh_l0"``) or a sub-layer
            path (``"0"``, ``"norm1"``) relative to the layer.
        share_seed: whether other layers may carry the same explicit seed on purpose.
    """

    scheme: SchemeName | InitFn
    seed: int | None = None
    kwargs: Mapping[str, KwValue] = field(default_factory=lambda: _EMPTY)
    bias: InitSpec | None = None
    params: Mapping[str, InitSpec] = field(default_factory=lambda: _EMPTY)
    share_seed: bool = False
    # Part of equality: typing caches Annotated[...] by its metadata's equality and hash.
    _problem: tuple[type[DeclarationError], str] | None = field(default=None, repr=False)

    @property
    def scheme_name(self) -> str:
        """The scheme's name, or ``fn:<qualified name>`` for a function."""
        if isinstance(self.scheme, str):
            return self.scheme
        return "fn:" + getattr(self.scheme, "__qualname__", type(self.scheme).__name__)

    def describe(self) -> str:
        """One line such as ``kaiming_normal(nonlinearity='relu') seed=1``."""
        text = (
            rule_text(self.scheme, self.kwargs)
            if isinstance(self.scheme, str)
            else (self.scheme_name)
        )
        if self.seed is not None:
            text += f" seed={self.seed}"
        if self.bias is not None:
            text += f" bias={self.bias.describe()}"
        return text

    def __hash__(self) -> int:  # typing hashes Annotated metadata, e.g. inside Optional[...]
        return hash(
            (
                self.scheme,
                self.seed,
                tuple(self.kwargs.items()),
                self.bias,
                tuple(self.params.items()),
                self.share_seed,
                self._problem,
            )
        )

    def raise_problem(self, where: str) -> None:
        """Raise the error this spec was made with, naming ``where`` (e.g. ``Net.fc1``)."""
        if self._problem is not None:
            kind, message = self._problem
            raise kind(f"{where}: {message}")

    def __call__(self, factory: Callable[[_S], _T], /) -> DeclaredLayer[_S, _T]:
        """Use the spec as a decorator on a factory method: the method becomes a layer."""
        where = getattr(factory, "__qualname__", repr(factory))
        self.raise_problem(where)
        if not callable(factory):
            raise DeclarationError(
                f"{where}: @seeded_init(...) decorates a method `def name(self) -> Layer`, not "
                f"{type(factory).__name__}"
            )
        return DeclaredLayer(self, factory)


def _part(value: object, key: str) -> InitSpec:
    """Normalize a ``bias=``/``params=`` value into a spec (whose problem, if any, it keeps)."""
    if isinstance(value, InitSpec):
        if value._problem is not None:
            kind, message = value._problem
            return InitSpec("default", _problem=(kind, f"{key}: {message}"))
        if value.bias is not None or value.params or value.share_seed:
            return InitSpec(
                "default",
                _problem=(
                    DeclarationError,
                    f"{key} takes a scheme and its keywords (and optionally seed=), not bias=, "
                    f"params= or share_seed=",
                ),
            )
        return value
    if isinstance(value, str) or callable(value):
        try:
            return _make_spec(value, None, None, None, False, {})
        except DeclarationError as exc:
            return InitSpec("default", _problem=(type(exc), f"{key}: {exc}"))
    return InitSpec(
        "default",
        _problem=(
            DeclarationError,
            f"{key} got {value!r} ({type(value).__name__}); write a scheme name, a function "
            f"(tensor, generator) -> None, or seeded_init(scheme=..., ...)",
        ),
    )


@overload
def seeded_init(
    *,
    scheme: Literal["default", "zeros", "ones", "eye"] = "default",
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["uniform"],
    a: Scalar = 0.0,
    b: Scalar = 1.0,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["normal"],
    mean: Scalar = 0.0,
    std: Scalar = 1.0,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["trunc_normal"],
    mean: Scalar = 0.0,
    std: Scalar = 1.0,
    a: Scalar | None = None,
    b: Scalar | None = None,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["xavier_uniform", "xavier_normal", "orthogonal"],
    gain: Scalar = 1.0,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["kaiming_uniform", "kaiming_normal"],
    a: Scalar = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["sparse"],
    sparsity: Scalar,
    std: Scalar = 0.01,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["constant"],
    val: Scalar,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: Literal["dirac"],
    groups: int = 1,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
@overload
def seeded_init(
    *,
    scheme: InitFn,
    seed: int | None = None,
    bias: PartInit | None = None,
    params: Mapping[str, PartInit] | None = None,
    share_seed: bool = False,
) -> InitSpec: ...
def seeded_init(
    *args: object,
    scheme: object = "default",
    seed: object = None,
    bias: object = None,
    params: object = None,
    share_seed: object = False,
    **kwargs: object,
) -> InitSpec:
    """Declare how a layer of a :class:`SeededModule` is initialized.

    Use it as a decorator on a factory method, or as ``Annotated`` metadata::

        @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
        def fc1(self) -> nn.Linear:
            return nn.Linear(self.d, 2 * self.d)

        fc: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=3)]

    Args:
        scheme: a name (keywords as in ``torch.nn.init``), or a function
            ``(tensor, generator) -> None``. ``"default"`` replays the layer type's own PyTorch
            algorithm.
        seed: an int in ``[0, 2**64)``: the layer draws from
            ``torch.Generator().manual_seed(seed)``. None derives it from the root seed and
            the layer's path (see :func:`derive_seed`).
        bias: the rule for bias parameters (default ``"zeros"``; PyTorch's own under
            ``"default"``).
        params: per-part rules by parameter name or sub-layer path, e.g.
            ``{"weight_hh_l0": "orthogonal"}``. A part given its own seed draws from its own
            generator.
        share_seed: allow other layers of the same model to carry the same explicit seed.
        **kwargs: the scheme's keywords (``a``, ``b``, ``mean``, ``std``, ``gain``, ``mode``,
            ``nonlinearity``, ``sparsity``, ``val``, ``groups``). A number may be given as a
            function of the declaring module, for values that depend on its configuration:
            ``std=lambda block: 0.02 / math.sqrt(2 * block.n_layer)``.

    Returns:
        The spec; wrong input is reported, naming the layer, when the class is defined.
    """
    if args:
        what = getattr(args[0], "__qualname__", repr(args[0]))
        raise DeclarationError(
            f"{what}: seeded_init takes keywords only; write @seeded_init(...) with "
            f'parentheses, e.g. @seeded_init(scheme="default")'
        )
    try:
        return _make_spec(scheme, seed, bias, params, share_seed, kwargs)
    except DeclarationError as exc:
        return InitSpec("default", _problem=(type(exc), str(exc)))


def _make_spec(
    scheme: object,
    seed: object,
    bias: object,
    params: object,
    share_seed: object,
    kwargs: Mapping[str, object],
) -> InitSpec:
    if isinstance(scheme, str):
        clean = check_kwargs(scheme, kwargs, f"scheme={scheme!r}")
    elif callable(scheme):
        if kwargs:
            raise DeclarationError(
                f"a function scheme takes no keywords, got {', '.join(k + '=' for k in kwargs)};"
                f" bind them with functools.partial(fn, ...) or a small wrapper"
            )
        clean = {}
    else:
        raise DeclarationError(
            f"scheme={scheme!r} ({type(scheme).__name__}) is neither a scheme name nor a "
            f"function (tensor, generator) -> None"
        )
    if seed is not None:
        check_seed(seed, "seed=")
    if not isinstance(share_seed, bool):
        raise DeclarationError(f"share_seed={share_seed!r} must be True or False")
    bias_spec = None if bias is None else _part(bias, "bias=")
    if bias_spec is not None and bias_spec._problem is not None:
        raise bias_spec._problem[0](bias_spec._problem[1])
    parts: dict[str, InitSpec] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise DeclarationError(
                f"params={params!r} must be a dict such as {{'weight_hh_l0': 'orthogonal'}}"
            )
        for key, value in params.items():
            if not isinstance(key, str) or not key:
                raise DeclarationError(f"params= key {key!r} must be a parameter or layer name")
            part = _part(value, f"params[{key!r}]")
            if part._problem is not None:
                raise part._problem[0](part._problem[1])
            parts[key] = part
    return InitSpec(
        scheme,  # type: ignore[arg-type]
        seed,  # type: ignore[arg-type]
        MappingProxyType(clean),
        bias_spec,
        MappingProxyType(parts),
        share_seed,
    )


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


class DeclaredLayer(Generic[_S, _T]):
    """A declared layer on its class: on an instance it is the layer, on the class the declaration.

    ``Net(8).fc1`` is the ``nn.Linear`` the factory built; ``Net.fc1`` is this object, with the
    declaration's ``name``, ``spec``, ``scheme``, ``seed`` and ``kwargs``.
    """

    def __init__(
        self,
        spec: InitSpec,
        factory: Callable[[_S], _T] | None,
        *,
        annotation: object = None,
    ) -> None:
        self.spec = spec
        self.factory = factory
        self.annotation = annotation  # the annotated type (annotation form), when resolvable
        self.name = ""
        self.owner: type[Any] | None = None
        if factory is not None:
            self.__doc__ = getattr(factory, "__doc__", None)

    def __set_name__(self, owner: type[Any], name: str) -> None:
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
    def __get__(self, instance: None, owner: type[Any], /) -> Self: ...
    @overload
    def __get__(self, instance: _S, owner: type[Any], /) -> _T: ...
    def __get__(self, instance: _S | None, owner: type[Any], /) -> Self | _T:
        if instance is None:
            return self
        d = instance.__dict__
        for table in (d.get("_modules"), d.get("_parameters")):
            if table is not None and self.name in table:
                return table[self.name]  # type: ignore[no-any-return]
        from ._build import build_missing

        return build_missing(instance, self)  # type: ignore[return-value]

    def __set__(self, instance: _S, value: _T, /) -> None:
        # nn.Module.__setattr__ handles Modules and Parameters itself; only other values get here.
        if value is None:
            instance.__dict__["_modules"][self.name] = None
            return
        where = f"{type(instance).__qualname__}.{self.name}"
        raise ConstructionError(
            f"{where} is a declared layer; it holds an nn.Module or nn.Parameter, not "
            f"{type(value).__name__}. Assign a layer, e.g. self.{self.name} = nn.Linear(...)"
        )
