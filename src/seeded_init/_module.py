"""The ``SeededModule`` mixin: declared layers, construction, and ``reset_parameters``."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from torch import nn

from ._build import under_construction
from ._classes import prepare_class, wraps_construction
from ._declare import Declaration, DeclaredLayer
from ._defaults import default_handler
from ._execute import execute
from ._plan import Plan, _module_reset, build_plan, join
from ._records import InitPlan
from ._seeds import DEFAULT_ROOT_SEED, check_seed

__all__ = ["SeededModule", "declarations"]


def _lookup(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


class _Link:
    """Where a module sits in the tree that initialized it last: (root, path), held weakly.

    Copies (``copy.deepcopy``, pickle) point at the copied root.
    """

    __slots__ = ("_module", "_root", "path")

    def __init__(self, root: nn.Module, path: str, module: nn.Module) -> None:
        self._root = weakref.ref(root)
        self._module = weakref.ref(module)
        self.path = path

    def resolve(self) -> nn.Module | None:
        """The root, if it is alive and still holds the module at the same path."""
        root, module = self._root(), self._module()
        if root is None or module is None or root is module or _lookup(root, self.path) is not module:
            return None
        return root

    def __deepcopy__(self, memo: dict[int, Any]) -> _Link:
        root, module = self._root(), self._module()
        assert root is not None and module is not None
        return type(self)(copy.deepcopy(root, memo), self.path, copy.deepcopy(module, memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._root(), self.path, self._module()))


class _SubtreeReset(_Link):
    """Installed as a layer's ``reset_parameters``: re-draws just that layer, from the root's
    plan, so ``for m in model.modules(): m.reset_parameters()`` reproduces ``model``'s reset.
    Once the layer has left that tree, it runs the layer class's own method again."""

    __slots__ = ()

    def __call__(self) -> None:
        module = self._module()
        if module is None:
            return
        root = self.resolve()
        if root is None or under_construction(root) or not isinstance(root, SeededModule):
            own = _module_reset(module)
            if own is not None:
                own(module)
            return
        root._seeded_reset(within=self.path)


class _Tie:
    """One tensor held under a second name (a head sharing the embedding's weight).

    ``module.to_empty()`` replaces parameters one by one and so unties them; a reset ties them
    again. It leaves alone a tie the user undid by assigning a new parameter to one side.
    """

    __slots__ = ("alias", "owner", "shared")

    def __init__(self, owner: str, alias: str, shared: nn.Parameter) -> None:
        self.owner, self.alias = owner, alias  # "module path:attr"
        self.shared = weakref.ref(shared)

    def restore(self, root: nn.Module) -> None:
        owner_mod, owner_attr = _resolve(root, self.owner)
        alias_mod, alias_attr = _resolve(root, self.alias)
        if owner_mod is None or alias_mod is None:
            return
        kept, other = owner_mod._parameters.get(owner_attr), alias_mod._parameters.get(alias_attr)
        if kept is None or other is None or kept is other or kept.shape != other.shape:
            return
        shared = self.shared()
        if shared is not kept and shared is not other:  # both replaced: to_empty or _apply
            alias_mod._parameters[alias_attr] = kept

    def __deepcopy__(self, memo: dict[int, Any]) -> _Tie:
        shared = self.shared()
        assert shared is not None
        return type(self)(self.owner, self.alias, copy.deepcopy(shared, memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.owner, self.alias, self.shared()))


def _resolve(root: nn.Module, where: str) -> tuple[nn.Module | None, str]:
    path, attr = where.rsplit(":", 1)
    return _lookup(root, path), attr


def _find_ties(root: nn.Module) -> list[_Tie]:
    first: dict[int, str] = {}
    ties = []
    for path, m in root.named_modules():
        for attr, p in m._parameters.items():
            if p is None:
                continue
            here = f"{path}:{attr}"
            if id(p) in first:
                ties.append(_Tie(first[id(p)], here, p))
            else:
                first[id(p)] = here
    return ties


class SeededModule(nn.Module):
    """An ``nn.Module`` whose layers are initialized from their own seeded generators.

    Declare layers on the class with :func:`seeded_init`; ``reset_parameters()`` then
    initializes every parameter in the tree, bitwise the same on every call, without touching
    the global RNG. Construction ends with that same reset.

    Args:
        seed: the root seed that undeclared seeds are derived from (default 0).
    """

    _seeded_table: ClassVar[Mapping[str, DeclaredLayer[Any, Any]]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        prepare_class(cls, SeededModule)

    @wraps_construction
    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        root = DEFAULT_ROOT_SEED if seed is None else check_seed(
            seed, f"{type(self).__qualname__}(seed=...)")
        self.__dict__["_seeded_root_seed"] = root

    @property
    def root_seed(self) -> int:
        """The seed that derived layer seeds come from; settable. Default 0."""
        return int(self.__dict__.get("_seeded_root_seed", DEFAULT_ROOT_SEED))

    @root_seed.setter
    def root_seed(self, value: int) -> None:
        self.__dict__["_seeded_root_seed"] = check_seed(value, f"{type(self).__qualname__}.root_seed")

    def reset_parameters(self, seed: int | None = None) -> None:
        """Re-initialize every parameter in the tree, as the declarations say.

        Layers draw from their own ``torch.Generator``; the global RNG is left untouched.
        Called on a SeededModule nested in another, it re-draws just its part of the
        outer model's reset.

        Args:
            seed: the root seed for this call instead of :attr:`root_seed`.

        Raises:
            PlanError: the plan cannot be carried out (nothing was changed).
            SeedError: ``seed`` is not an int in ``[0, 2**64)``.
        """
        if seed is not None:
            check_seed(seed, f"{type(self).__qualname__}.reset_parameters: seed=")
        if under_construction(self):
            return  # the construction ends with this very reset
        self._seeded_reset(seed=seed)

    def init_plan(self, seed: int | None = None) -> InitPlan:
        """What ``reset_parameters(seed)`` would write, without writing anything."""
        if seed is not None:
            check_seed(seed, f"{type(self).__qualname__}.init_plan: seed=")
        root, prefix = self._seeded_root()
        plan = build_plan(root, seed if seed is not None else root.root_seed)
        return plan.records(within=prefix)

    def _seeded_root(self) -> tuple[SeededModule, str]:
        """The outermost SeededModule whose last reset covered this one, and our path in it."""
        link: _Link | None = self.__dict__.get("_seeded_link")
        if link is not None:
            root = link.resolve()
            if isinstance(root, SeededModule):
                outer, prefix = root._seeded_root()
                return outer, join(prefix, link.path)
        return self, ""

    def _seeded_reset(self, seed: int | None = None, within: str = "",
                      construction: bool = False) -> None:
        root: SeededModule = self
        prefix = ""
        if not construction:
            root, prefix = self._seeded_root()
        for tie in root.__dict__.get("_seeded_ties", ()):
            tie.restore(root)
        plan = build_plan(root, seed if seed is not None else root.root_seed)
        execute(plan, join(prefix, within), construction)
        root._seeded_adopt(plan)

    def _seeded_adopt(self, plan: Plan) -> None:
        """Link nested SeededModules and layers to this root, for their own resets."""
        for nested, path in plan.seeded:
            if nested is not self:
                nested.__dict__["_seeded_link"] = _Link(self, path, nested)
        for layer, path in plan.plain:
            if (any(p is not None for p in layer._parameters.values())
                    or _module_reset(layer) is not None or default_handler(layer) is not None):
                layer.__dict__["reset_parameters"] = _SubtreeReset(self, path, layer)
        self.__dict__["_seeded_ties"] = _find_ties(self)


def declarations(model: type[SeededModule] | SeededModule) -> Mapping[str, Declaration]:
    """The declared layers of a SeededModule class (or instance), in declaration order.

    Raises:
        TypeError: ``model`` is not a SeededModule class or instance.
    """
    cls = model if isinstance(model, type) else type(model)
    if not issubclass(cls, SeededModule):
        raise TypeError(f"declarations() takes a SeededModule class or instance, not {cls!r}")
    return MappingProxyType({n: d.declaration() for n, d in cls._seeded_table.items()})
