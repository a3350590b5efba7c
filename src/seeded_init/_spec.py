"""Declarations: ``seeded_init(...)``, the frozen spec of how one layer is initialized.

``seeded_init`` is a class, used as a decorator (like ``functools.cached_property``): a call with
a wrong argument is still a ``seeded_init`` to a type checker, so the mistake is one error and
the decorated method keeps its type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from torch import nn
from typing_extensions import Unpack

from ._configs import Scheme
from ._errors import DeclarationError
from ._layer import DeclaredLayer
from ._schemes import SCHEMES, KwValue, check_kwargs, rule_text
from ._seeds import check_seed
from ._types import InitFn, SchemeKeywords, SchemeName

if TYPE_CHECKING:
    from ._module import SeededModule

__all__ = ["InitSpec", "PartInit", "part_spec", "seeded_init"]

# Named for the messages type checkers print: "Value of type variable "LayerT" ... cannot be int".
SeededModuleT = TypeVar("SeededModuleT", bound="SeededModule")
LayerT = TypeVar("LayerT", bound="nn.Module | nn.Parameter")

#: What ``bias=`` and the values of ``params=`` accept: a scheme name, a scheme type, a
#: function, or a spec made by ``seeded_init(...)`` (to give the part a seed of its own).
PartInit: TypeAlias = "SchemeName | Scheme | InitFn | seeded_init"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_Problem: TypeAlias = "tuple[type[DeclarationError], str]"


class seeded_init:
    """Declare how a layer of a :class:`SeededModule` is initialized.

    Use it as a decorator on a factory method, or as ``Annotated`` metadata::

        @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
        def fc1(self) -> nn.Linear:
            return nn.Linear(self.d, 2 * self.d)

        fc: Annotated[nn.Linear, seeded_init(scheme=XavierUniform(gain=2.0), seed=3)]

    Args:
        scheme: a name (keywords as in ``torch.nn.init``), a scheme type such as
            ``KaimingNormal(nonlinearity="relu")`` (keywords checked by type checkers too), or
            a function ``(tensor, generator) -> None``. ``"default"`` replays the layer type's
            own PyTorch algorithm.
        seed: an int in ``[0, 2**64)``: the layer draws from
            ``torch.Generator().manual_seed(seed)``. None derives it from the root seed and
            the layer's path (see :func:`derive_seed`).
        bias: the rule for bias parameters (default ``"zeros"``; PyTorch's own under
            ``"default"``).
        params: per-part rules by parameter name or sub-layer path, e.g.
            ``{"weight_hh_l0": "orthogonal"}``. A part given its own seed draws from its own
            generator.
        share_seed: allow other layers of the same model to carry the same explicit seed.
        **keywords: a named scheme's keywords (``a``, ``b``, ``mean``, ``std``, ``gain``,
            ``mode``, ``nonlinearity``, ``sparsity``, ``val``, ``groups``); which scheme takes
            which is checked when the class is defined. A number may be given as a function of
            the declaring module: ``std=lambda block: 0.02 / math.sqrt(2 * block.n_layer)``.

    The spec is frozen. Its attributes: ``scheme`` (a name or a function), ``seed``, ``kwargs``
    (the scheme's keywords, defaults filled in), ``bias`` and ``params`` (specs), ``share_seed``,
    and ``problem``: why the spec is invalid, raised naming the layer when a class declares one
    with it (None when valid).
    """

    __slots__ = ("bias", "kwargs", "params", "problem", "scheme", "seed", "share_seed")

    scheme: SchemeName | InitFn
    seed: int | None
    kwargs: Mapping[str, KwValue]
    bias: seeded_init | None
    params: Mapping[str, seeded_init]
    share_seed: bool
    problem: _Problem | None

    def __init__(
        self,
        scheme: SchemeName | Scheme | InitFn = "default",
        *,
        seed: int | None = None,
        bias: PartInit | None = None,
        params: Mapping[str, PartInit] | None = None,
        share_seed: bool = False,
        **keywords: Unpack[SchemeKeywords],
    ) -> None:
        if callable(scheme) and not isinstance(scheme, Scheme) and _takes_one_argument(scheme):
            # Raised now, not at class definition: @seeded_init without parentheses would make
            # the spec the attribute, and no layer.
            raise DeclarationError(_one_argument_message(scheme))
        try:
            _normalize(self, scheme, seed, bias, params, share_seed, dict(keywords))
        except DeclarationError as exc:
            _fill(self, "default", problem=(type(exc), str(exc)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a seeded_init spec is frozen; make a new one to change {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a seeded_init spec is frozen; {name} cannot be deleted")

    def _key(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.seed,
            tuple(self.kwargs.items()),
            self.bias,
            tuple(self.params.items()),
            self.share_seed,
            self.problem,
        )

    def __eq__(self, other: object) -> bool:
        # The problem is part of equality: typing caches Annotated[...] by its metadata.
        return isinstance(other, seeded_init) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self.problem is not None:
            return f"seeded_init(<invalid: {self.problem[1]}>)"
        return f"seeded_init({self.describe()})"

    @property
    def scheme_name(self) -> str:
        """The scheme's name, or ``fn:<qualified name>`` for a function."""
        if isinstance(self.scheme, str):
            return self.scheme
        return "fn:" + getattr(self.scheme, "__qualname__", type(self.scheme).__name__)

    def describe(self) -> str:
        """One line such as ``kaiming_normal(nonlinearity='relu') seed=1``."""
        if isinstance(self.scheme, str):
            text = rule_text(self.scheme, self.kwargs)
        else:
            text = self.scheme_name
        if self.seed is not None:
            text += f" seed={self.seed}"
        if self.bias is not None:
            bias = self.bias.describe()
            text += f" bias=({bias})" if " " in bias else f" bias={bias}"
        return text

    def raise_problem(self, where: str) -> None:
        """Raise the error this spec was made with, naming ``where`` (e.g. ``Net.fc1``)."""
        if self.problem is not None:
            kind, message = self.problem
            raise kind(f"{where}: {message}")

    def __call__(self, factory: Callable[[SeededModuleT], LayerT], /) -> DeclaredLayer[LayerT]:
        """Use the spec as a decorator on a factory method: the method becomes a layer."""
        where = getattr(factory, "__qualname__", repr(factory))
        self.raise_problem(where)
        if not callable(factory):
            raise DeclarationError(
                f"{where}: @seeded_init(...) decorates a method `def name(self) -> Layer`, not "
                f"{type(factory).__name__}"
            )
        return DeclaredLayer(self, factory)


#: The type of a declaration's spec: what ``seeded_init(...)`` makes.
InitSpec: TypeAlias = seeded_init


def _fill(
    spec: seeded_init,
    scheme: SchemeName | InitFn,
    seed: int | None = None,
    kwargs: Mapping[str, KwValue] = _EMPTY,
    bias: seeded_init | None = None,
    params: Mapping[str, seeded_init] = _EMPTY,
    share_seed: bool = False,
    problem: _Problem | None = None,
) -> None:
    for name, value in (
        ("scheme", scheme),
        ("seed", seed),
        ("kwargs", MappingProxyType(dict(kwargs))),
        ("bias", bias),
        ("params", MappingProxyType(dict(params))),
        ("share_seed", share_seed),
        ("problem", problem),
    ):
        object.__setattr__(spec, name, value)


def _invalid(problem: _Problem) -> seeded_init:
    """A spec that raises ``problem`` when a class uses it."""
    spec = object.__new__(seeded_init)
    _fill(spec, "default", problem=problem)
    return spec


def _part(value: object, key: str) -> seeded_init:
    """Normalize a ``bias=``/``params=`` value into a spec (whose problem, if any, it keeps)."""
    if isinstance(value, seeded_init):
        if value.problem is not None:
            kind, message = value.problem
            return _invalid((kind, f"{key}: {message}"))
        if value.bias is not None or value.params or value.share_seed:
            return _invalid(
                (
                    DeclarationError,
                    f"{key} takes a scheme and its keywords (and optionally seed=), not bias=, "
                    f"params= or share_seed=",
                )
            )
        return value
    if isinstance(value, str | Scheme) or callable(value):
        spec = object.__new__(seeded_init)
        try:
            _normalize(spec, value, None, None, None, False, {})
        except DeclarationError as exc:
            return _invalid((type(exc), f"{key}: {exc}"))
        return spec
    return _invalid(
        (
            DeclarationError,
            f"{key} got {value!r} ({type(value).__name__}); write a scheme name, a scheme "
            f"such as Normal(std=0.02), a function (tensor, generator) -> None, or "
            f"seeded_init(scheme=..., seed=...)",
        )
    )


def part_spec(
    value: object, where: str, *, whole: bool = False, seed: int | None = None
) -> seeded_init:
    """``value`` (a scheme name, scheme, function or spec) as a valid spec, else raise its
    problem naming ``where``. ``whole``: a spec may carry bias=, params= and share_seed= (a
    rule for a layer, not a part of one). ``seed``: the spec with this seed instead."""
    if whole and isinstance(value, seeded_init):
        value.raise_problem(where)
        spec = value
    else:
        spec = _part(value, where)
        if spec.problem is not None:
            kind, message = spec.problem
            raise kind(message)
    if seed is None:
        return spec
    out = object.__new__(seeded_init)
    _fill(out, spec.scheme, seed, spec.kwargs, spec.bias, spec.params, spec.share_seed)
    return out


def _normalize(
    spec: seeded_init,
    scheme: object,
    seed: object,
    bias: object,
    params: object,
    share_seed: object,
    kwargs: Mapping[str, object],
) -> None:
    """Check the arguments of ``seeded_init`` and fill ``spec`` with them, defaults filled in."""
    if isinstance(scheme, type):
        raise DeclarationError(
            f"scheme={scheme.__name__} is a class; write an instance, e.g. "
            f"scheme={scheme.__name__}(), or a scheme name"
        )
    if isinstance(scheme, Scheme):
        if kwargs:
            raise DeclarationError(
                f"scheme={scheme!r} carries its keywords; do not pass "
                f"{', '.join(k + '=' for k in kwargs)} beside it"
            )
        kwargs = scheme.keywords()
        scheme = scheme.name
    if isinstance(scheme, str):
        clean = check_kwargs(scheme, kwargs, f"scheme={scheme!r}")
    elif callable(scheme):
        if _takes_one_argument(scheme):
            raise DeclarationError(_one_argument_message(scheme))
        _check_scheme_function(scheme)
        if kwargs:
            raise DeclarationError(
                f"a function scheme takes no keywords, got {', '.join(k + '=' for k in kwargs)};"
                f" bind them with functools.partial(fn, ...) or a small wrapper"
            )
        clean = {}
    else:
        raise DeclarationError(
            f"scheme={scheme!r} ({type(scheme).__name__}) is neither a scheme name, a scheme "
            f"such as Normal(std=0.02), nor a function (tensor, generator) -> None"
        )
    if seed is not None:
        check_seed(seed, "seed=")
    if not isinstance(share_seed, bool):
        raise DeclarationError(f"share_seed={share_seed!r} must be True or False")
    bias_spec = None if bias is None else _part(bias, "bias=")
    if bias_spec is not None and bias_spec.problem is not None:
        raise bias_spec.problem[0](bias_spec.problem[1])
    parts: dict[str, seeded_init] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise DeclarationError(
                f"params={params!r} must be a dict such as {{'weight_hh_l0': 'orthogonal'}}"
            )
        entries = cast("Mapping[object, object]", params)
        for key, value in entries.items():
            if not isinstance(key, str) or not key:
                raise DeclarationError(f"params= key {key!r} must be a parameter or layer name")
            part = _part(value, f"params[{key!r}]")
            if part.problem is not None:
                raise part.problem[0](part.problem[1])
            parts[key] = part
    _fill(
        spec,
        cast("SchemeName | InitFn", scheme),  # checked above: a name or a function
        cast("int | None", seed),  # checked above
        clean,
        bias_spec,
        parts,
        share_seed,
    )


def _one_argument_message(fn: Callable[..., object]) -> str:
    name = getattr(fn, "__qualname__", type(fn).__name__)
    return (
        f"@seeded_init needs parentheses: write @seeded_init(...) above {name}, e.g. "
        f'@seeded_init(scheme="default"). (As scheme=, {name} would not do either: it takes '
        f"one argument, and a scheme function takes (tensor, generator))"
    )


def _check_scheme_function(fn: Callable[..., object]) -> None:
    """A scheme function is called as ``fn(tensor, generator)``."""
    inner: object = getattr(fn, "func", fn)  # a functools.partial keeps its function there
    name = getattr(inner, "__name__", "")
    if getattr(inner, "__module__", None) == "torch.nn.init":
        scheme = name.rstrip("_")
        instead = f"scheme={scheme!r} with its keywords, or " if scheme in SCHEMES else ""
        raise DeclarationError(
            f"scheme=torch.nn.init.{name} would get the generator as its second argument, "
            f"which it does not take; write {instead}a function "
            f"lambda tensor, generator: torch.nn.init.{name}(tensor, ..., generator=generator)"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: called as it is
    try:
        signature.bind(None, None)
    except TypeError:
        raise DeclarationError(
            f"{getattr(fn, '__qualname__', name) or type(fn).__name__}"
            f"({', '.join(signature.parameters)}) cannot be "
            f"called as (tensor, generator); a scheme function is "
            f"def init(tensor: torch.Tensor, generator: torch.Generator) -> None"
        ) from None


def _takes_one_argument(fn: Callable[..., object]) -> bool:
    """A method ``def name(self)`` rather than a scheme function ``(tensor, generator)``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1 and not any(p.kind == p.VAR_POSITIONAL for p in params)
