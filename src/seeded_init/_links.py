"""Links from layers back to the model that initialized them, and the ties it had.

A layer's own ``reset_parameters`` is replaced, on the instance, by a ``SubtreeReset`` that
re-draws just that layer from its model's plan, so ``for m in model.modules():
m.reset_parameters()`` gives the values ``model.reset_parameters()`` gives.
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

from ._build import under_construction
from ._execute import fallback_running
from ._torch import named_modules, params
from ._units import lookup, module_reset

__all__ = ["Link", "SubtreeReset", "Tie", "find_ties"]


class Link:
    """Where a module sits in the model that holds it: (root, path), held weakly, stored on the
    module as ``_seeded_link``. Models link every module of their tree, and modules attached
    later (``module_registration_hook``); a module moved within the tree is found again.

    A copy (``copy.deepcopy``, pickle) keeps the module but not the root: a copied layer may
    have left its model, and a copied model links its layers again as it is rebuilt
    (``SeededModule.__setstate__``).
    """

    __slots__ = ("_module", "_root", "path")

    def __init__(self, root: nn.Module | None, path: str, module: nn.Module | None) -> None:
        self._root = None if root is None else weakref.ref(root)
        self._module = None if module is None else weakref.ref(module)
        self.path = path

    def points_to(self, root: nn.Module, path: str) -> bool:
        return self._root is not None and self._root() is root and self.path == path

    def module(self) -> nn.Module | None:
        return None if self._module is None else self._module()

    def resolve(self) -> nn.Module | None:
        """The root, if it is alive and still holds the module (its path updated if moved)."""
        root = None if self._root is None else self._root()
        module = self.module()
        if root is None or module is None or root is module:
            return None
        if lookup(root, self.path) is module:
            return root
        for path, m in named_modules(root):
            if m is module:
                self.path = path
                return root
        return None

    def __deepcopy__(self, memo: dict[int, Any]) -> Link:
        return type(self)(None, self.path, copy.deepcopy(self.module(), memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (None, self.path, self.module()))


class SubtreeReset:
    """Installed as a layer's ``reset_parameters``: re-draws just that layer, from the plan of
    the model its ``_seeded_link`` names, so ``for m in model.modules(): m.reset_parameters()``
    reproduces ``model``'s reset. Once the layer has left that model, it runs the layer class's
    own method again."""

    __slots__ = ("_module",)

    def __init__(self, module: nn.Module) -> None:
        self._module = weakref.ref(module)

    def __call__(self, *args: object, **kwargs: object) -> None:
        module = self._module()
        if module is None:
            return
        from ._module import SeededModule, reset_tree  # import cycle: _module builds on links

        link = module.__dict__.get("_seeded_link")
        root = link.resolve() if isinstance(link, Link) else None
        if (
            not isinstance(link, Link)
            or not isinstance(root, SeededModule)
            or under_construction(root)
            or fallback_running()
            or args
            or kwargs
        ):
            # Outside a model, inside another module's own reset, or asked for something
            # specific (arguments): the layer's own method, as PyTorch would run it.
            own = module_reset(module)
            if own is not None:
                own(module, *args, **kwargs)
            return
        reset_tree(root, within=link.path)

    def __deepcopy__(self, memo: dict[int, Any]) -> SubtreeReset:
        module = self._module()
        assert module is not None  # the hook lives in its module's __dict__
        return type(self)(copy.deepcopy(module, memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._module(),))


class Tie:
    """One tensor held under a second name (a head sharing the embedding's weight).

    ``module.to_empty()`` replaces parameters one by one and so unties them; a reset ties them
    again. It leaves alone a tie the user undid by assigning a new parameter to one side. The
    shared parameter carries a token (``vars(param)["_seeded_tie"]``) rather than being
    referenced: a reference would stop ``torch.utils.swap_tensors`` (``module.to()`` and
    ``load_state_dict`` when ``torch.__future__`` asks for swapping), and an id can be reused.
    """

    __slots__ = ("alias", "owner", "token")

    def __init__(self, owner: str, alias: str, token: int) -> None:
        self.owner, self.alias = owner, alias  # "module path:attr"
        self.token = token

    def restore(self, root: nn.Module) -> Callable[[], None] | None:
        """Tie the two names again if ``to_empty`` untied them; returns how to undo that."""
        owner_mod, owner_attr = _resolve(root, self.owner)
        alias_mod, alias_attr = _resolve(root, self.alias)
        if owner_mod is None or alias_mod is None:
            return None
        kept, other = params(owner_mod).get(owner_attr), params(alias_mod).get(alias_attr)
        if kept is None or other is None or kept is other or kept.shape != other.shape:
            return None
        tokens = (vars(kept).get("_seeded_tie"), vars(other).get("_seeded_tie"))
        if self.token in tokens:  # the user undid the tie: leave it undone
            return None
        # both replaced: to_empty, or a copy of an untied model
        table = params(alias_mod)
        table[alias_attr] = kept
        return lambda: table.__setitem__(alias_attr, other)


def _resolve(root: nn.Module, where: str) -> tuple[nn.Module | None, str]:
    path, attr = where.rsplit(":", 1)
    return lookup(root, path), attr


def find_ties(root: nn.Module) -> list[Tie]:
    """Every parameter held under a second name in ``root``'s tree."""
    first: dict[int, str] = {}
    ties: list[Tie] = []
    for path, m in named_modules(root):
        for attr, p in params(m).items():
            if p is None:
                continue
            here = f"{path}:{attr}"
            if id(p) in first:
                token = vars(p).setdefault("_seeded_tie", uuid.uuid4().int)
                ties.append(Tie(first[id(p)], here, token))
            else:
                first[id(p)] = here
    return ties
