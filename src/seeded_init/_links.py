"""Links from layers back to the model that initialized them, and the ties it had.

A layer's own ``reset_parameters`` is replaced, on the instance, by a ``SubtreeReset`` that
re-draws just that layer from its model's plan, so ``for m in model.modules():
m.reset_parameters()`` gives the values ``model.reset_parameters()`` gives.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

from torch import nn

from ._build import under_construction
from ._execute import fallback_running
from ._units import module_reset

__all__ = ["Link", "SubtreeReset", "Tie", "find_ties", "lookup"]


def lookup(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


class Link:
    """Where a module sits in the tree that initialized it last: (root, path), held weakly.

    A copy (``copy.deepcopy``, pickle) keeps the module but not the root: a copied layer may
    have left its model, and a copied model links its layers again as it is rebuilt
    (``SeededModule.__setstate__``).
    """

    __slots__ = ("_module", "_root", "path")

    def __init__(self, root: nn.Module | None, path: str, module: nn.Module | None) -> None:
        self._root = None if root is None else weakref.ref(root)
        self._module = None if module is None else weakref.ref(module)
        self.path = path

    def module(self) -> nn.Module | None:
        return None if self._module is None else self._module()

    def resolve(self) -> nn.Module | None:
        """The root, if it is alive and still holds the module at the same path."""
        root = None if self._root is None else self._root()
        module = self.module()
        if root is None or module is None or root is module:
            return None
        return root if lookup(root, self.path) is module else None

    def __deepcopy__(self, memo: dict[int, Any]) -> Link:
        return type(self)(None, self.path, copy.deepcopy(self.module(), memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (None, self.path, self.module()))


class SubtreeReset(Link):
    """Installed as a layer's ``reset_parameters``: re-draws just that layer, from the root's
    plan, so ``for m in model.modules(): m.reset_parameters()`` reproduces ``model``'s reset.
    Once the layer has left that tree, it runs the layer class's own method again."""

    __slots__ = ()

    def __call__(self) -> None:
        module = self.module()
        if module is None:
            return
        root = self.resolve()
        reset = getattr(root, "_seeded_reset", None)
        if root is None or reset is None or under_construction(root) or fallback_running():
            own = module_reset(module)
            if own is not None:
                own(module)
            return
        reset(within=self.path)


class Tie:
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

    def __deepcopy__(self, memo: dict[int, Any]) -> Tie:
        shared = self.shared()
        assert shared is not None
        return type(self)(self.owner, self.alias, copy.deepcopy(shared, memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.owner, self.alias, self.shared()))


def _resolve(root: nn.Module, where: str) -> tuple[nn.Module | None, str]:
    path, attr = where.rsplit(":", 1)
    return lookup(root, path), attr


def find_ties(root: nn.Module) -> list[Tie]:
    """Every parameter held under a second name in ``root``'s tree."""
    first: dict[int, str] = {}
    ties = []
    for path, m in root.named_modules():
        for attr, p in m._parameters.items():
            if p is None:
                continue
            here = f"{path}:{attr}"
            if id(p) in first:
                ties.append(Tie(first[id(p)], here, p))
            else:
                first[id(p)] = here
    return ties
