"""The ``SeededModule`` mixin: declared layers, construction, and ``reset_parameters``."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook
from torch.nn.utils.parametrize import ParametrizationList

from ._build import check_assigned, under_construction
from ._cache import Entry, Key, cached, forget, forget_in, lean, model_key, remember
from ._classes import prepare_class, wraps_construction
from ._defaults import default_handler
from ._draw import Draw, DrawOn, check_draw, overridden
from ._errors import PlanError
from ._execute import check_threads, execute, thread_count
from ._layer import Declaration, DeclaredLayer, table_of
from ._links import Link, SubtreeReset, Tie, find_ties
from ._parametrized import inverses, parametrized_tensors, remember_order, write_back
from ._plan import build_plan
from ._progress import check_progress, showing
from ._records import InitPlan
from ._seeds import DEFAULT_ROOT_SEED, check_seed
from ._torch import named_modules, params, uninitialized
from ._units import Plan, join, lookup, module_reset

if TYPE_CHECKING:
    from ._rules import InitRules

__all__ = ["SeededModule", "declarations", "link_tree", "reset_tree", "root_of"]


class SeededModule(nn.Module):
    """An ``nn.Module`` whose layers are initialized from their own seeded generators.

    Declare layers on the class with :func:`seeded_init`; ``reset_parameters()`` then
    initializes every parameter in the tree, bitwise the same on every call, without touching
    the global RNG. Construction ends with that same reset.

    Args:
        seed: the root seed that undeclared seeds are derived from (default 0).
        draw_on: ``"cpu"`` (default) draws every value on a CPU generator, so the model holds
            the same values on every device; ``"device"`` draws on each parameter's own
            device: faster on a GPU, but the values are that device's.
        draw_dtype: ``torch.float32`` draws random values in float32 and casts them, so a
            bfloat16 or float16 model holds its float32 twin's values rounded; None (default)
            draws in each parameter's dtype, as PyTorch does.
    """

    _seeded_table: ClassVar[Mapping[str, DeclaredLayer[Any]]] = MappingProxyType({})
    __jit_unused_properties__: ClassVar[list[str]] = ["root_seed"]  # for torch.jit.script

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        prepare_class(cls, SeededModule)

    @wraps_construction
    def __init__(
        self,
        *args: object,
        seed: int | None = None,
        draw_on: DrawOn = "cpu",
        draw_dtype: torch.dtype | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        if seed is not None:
            where = f"{type(self).__qualname__}(seed=...)"
            self.__dict__["_seeded_root_seed"] = check_seed(seed, where)
        how = check_draw(draw_on, draw_dtype, f"{type(self).__qualname__}(...): ")
        if how != Draw():
            self.__dict__["_seeded_draw"] = how

    @property
    def root_seed(self) -> int:
        """The seed that derived layer seeds come from; settable. Default 0.

        A SeededModule given a root seed (here or by ``seed=`` in its constructor) derives its
        layers' seeds from it and their path within it, also when it is nested in a model.
        One given none derives them from the model it is part of, whose seed it reads as.
        """
        own = self.__dict__.get("_seeded_root_seed")
        if own is not None:
            return int(own)
        root, path = root_of(self)
        if root is self:
            return DEFAULT_ROOT_SEED
        while path:  # the nearest enclosing module given a seed, else the model's
            path = path.rpartition(".")[0]
            above = lookup(root, path)
            if isinstance(above, SeededModule) and "_seeded_root_seed" in above.__dict__:
                return int(above.__dict__["_seeded_root_seed"])
        return root.root_seed

    @root_seed.setter
    def root_seed(self, value: int) -> None:
        where = f"{type(self).__qualname__}.root_seed"
        self.__dict__["_seeded_root_seed"] = check_seed(value, where)

    if not TYPE_CHECKING:  # type checkers keep nn.Module's, and each declaration's, typing

        def __setattr__(self, name: str, value: object) -> None:
            # nn.Module drops a layer before it registers a parameter under its name: check
            # a parameter assigned to a declared layer first, so that a refusal changes nothing.
            if isinstance(value, nn.Parameter) and not under_construction(self):
                check_assigned(self, name, value)
            super().__setattr__(name, value)

    def reset_parameters(
        self,
        seed: int | None = None,
        *,
        draw_on: DrawOn | None = None,
        draw_dtype: torch.dtype | None = None,
        threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        """Re-initialize every parameter in the tree, as the declarations say.

        Layers draw from their own ``torch.Generator``; the global RNG is left untouched.
        Called on a SeededModule nested in another, it re-draws just its part of the
        outer model's reset.

        Args:
            seed: the root seed for this call instead of :attr:`root_seed`.
            draw_on: for this call instead of the model's (see :class:`SeededModule`).
            draw_dtype: for this call instead of the model's (see :class:`SeededModule`).
            threads: how many threads fill independent layers at once (the values are the
                same for every count); None: ``$SEEDED_INIT_THREADS``, else
                ``torch.get_num_threads()``.
            progress: True shows a progress bar on stderr, False never; None (default)
                shows one on a terminal when the reset takes over a second, unless
                ``$SEEDED_INIT_PROGRESS`` is ``0``.

        Raises:
            PlanError: the plan cannot be carried out (nothing was changed).
            SeedError: ``seed`` is not an int in ``[0, 2**64)``.
        """
        name = type(self).__qualname__
        if seed is not None:
            check_seed(seed, f"{name}.reset_parameters: seed=")
        how = None
        if draw_on is not None or draw_dtype is not None:
            model = draw_of(root_of(self)[0])
            how = overridden(model, draw_on, draw_dtype, f"{name}.reset_parameters: ")
        check_threads(threads, f"{name}.reset_parameters: ")
        check_progress(progress, f"{name}.reset_parameters: ")
        if under_construction(self):
            return  # the construction ends with this very reset
        with showing(progress):
            reset_tree(self, seed=seed, how=how, threads=threads)

    def init_plan(self, seed: int | None = None) -> InitPlan:
        """What ``reset_parameters(seed)`` would write, without writing anything."""
        if seed is not None:
            check_seed(seed, f"{type(self).__qualname__}.init_plan: seed=")
        root, prefix = root_of(self)
        with parametrized_tensors(root):
            return build_plan(*_plan_args(root, prefix, seed)).records(within=prefix)

    def __getstate__(self) -> dict[str, object]:
        state: dict[str, object] = dict(super().__getstate__())  # type: ignore[no-untyped-call]
        forget_in(state)  # a copy has other tensors: it builds its own plan
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        # A copy (deepcopy, pickle, torch.load) links its layers to itself; an outer copy,
        # rebuilt after its children, links them to itself in turn.
        super().__setstate__(state)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        link_tree(self, self, "")
        kept = state.get("_seeded_ties")
        records: list[object] = list(cast("list[object]", kept)) if isinstance(kept, list) else []
        ties = {(t.owner, t.alias): t for t in records if isinstance(t, Tie)}
        for tie in find_ties(self):
            ties.setdefault((tie.owner, tie.alias), tie)
        self.__dict__["_seeded_ties"] = list(ties.values())


def root_of(m: SeededModule) -> tuple[SeededModule, str]:
    """The outermost SeededModule whose tree holds ``m``, and ``m``'s path in it."""
    link = m.__dict__.get("_seeded_link")
    if isinstance(link, Link):
        root = link.resolve()
        if isinstance(root, SeededModule):
            outer, prefix = root_of(root)
            return outer, join(prefix, link.path)
    return m, ""


def draw_of(root: SeededModule) -> Draw:
    """How the model ``root`` draws (its constructor's ``draw_on=``, ``draw_dtype=``)."""
    how = root.__dict__.get("_seeded_draw")
    return how if isinstance(how, Draw) else Draw()


def reset_tree(
    m: SeededModule,
    seed: int | None = None,
    within: str = "",
    construction: bool = False,
    how: Draw | None = None,
    threads: int | None = None,
) -> None:
    """Reset the part ``within`` of ``m`` (all of it for ""), from the plan of ``m``'s root,
    drawn as ``how`` says (the root's way by default), on ``threads`` threads."""
    root, prefix = (m, "") if construction else root_of(m)
    ties: list[Tie] = root.__dict__.get("_seeded_ties", [])
    undo = [u for u in (tie.restore(root) for tie in ties) if u is not None]
    how = draw_of(root) if how is None else how
    try:
        part = join(prefix, within)
        args = _plan_args(root, prefix, seed)
        # A whole-model reset of a model unchanged since the last one reuses its plan.
        key = None if construction or part else model_key(*args, SeededModule)
        entry = cached(root, key)
        if entry is not None:
            entry.run(how, thread_count(threads))
            return
        entry = draw_plan(root, lambda: build_plan(*args), part, construction, how, threads, key)
        if entry is not None and key is not None:  # a whole-model reset, not construction
            remember(root, entry)
    except BaseException:
        for u in reversed(undo):  # an error changes nothing: the names stay untied
            u()
        raise
    link_tree(root, root, "")
    root.__dict__["_seeded_ties"] = find_ties(root)


def draw_plan(
    root: nn.Module,
    build: Callable[[], Plan],
    part: str,
    construction: bool,
    how: Draw,
    threads: int | None,
    key: Key | None = None,
) -> Entry | None:
    """Build the plan of ``root`` (with its parametrized tensors standing in) and write the
    part ``part`` of it; returns the lean entry that ran, if the plan compiled to one."""
    with parametrized_tensors(root) as stand_ins:
        plan = build()
        saved = _saved(root, part) if stand_ins else []
        entry = None if part or stand_ins else lean(plan, key)
        if entry is not None:  # built-in fills only: run as a cached plan runs
            entry.run(how, thread_count(threads))
        else:
            execute(plan, part, construction, how, threads)
        try:
            pending = inverses(stand_ins, part, plan.root_seed)
        except PlanError as exc:
            with torch.no_grad():
                for t, old in saved:
                    t.copy_(old)
            raise PlanError(
                f"{exc}; every tensor the reset wrote was restored to its value before it"
            ) from exc
    write_back(pending)
    return entry


# The ties of the models that rules planned or reset, as a SeededModule keeps its own: after
# ``to_empty`` (which unties them) the next ruled reset ties them again.
_ruled_ties: weakref.WeakKeyDictionary[nn.Module, list[Tie]] = weakref.WeakKeyDictionary()


def _retied(model: nn.Module) -> list[Callable[[], None]]:
    """Tie again what ``to_empty`` untied since rules last saw ``model``; how to undo it."""
    ties = _ruled_ties.get(model, [])
    return [u for u in (tie.restore(model) for tie in ties) if u is not None]


def run_ruled(
    model: nn.Module, rules: InitRules, root_seed: int, how: Draw, threads: int | None
) -> None:
    """``rules.reset_parameters(model)``: the rules resolved on ``model``, then its plan."""
    undo = _retied(model)
    try:
        draw_plan(
            model,
            lambda: build_plan(model, root_seed, None, rules.resolve(model)),
            "",
            False,
            how,
            threads,
        )
    except BaseException:
        for u in reversed(undo):  # an error changes nothing: the names stay untied
            u()
        raise
    _ruled_ties[model] = find_ties(model)


def plan_ruled(model: nn.Module, rules: InitRules, root_seed: int) -> InitPlan:
    """``rules.init_plan(model)``: with its ties as the next reset will make them."""
    undo = _retied(model)
    try:
        with parametrized_tensors(model):
            plan = build_plan(model, root_seed, None, rules.resolve(model)).records()
    finally:
        for u in reversed(undo):
            u()
    _ruled_ties.setdefault(model, find_ties(model))  # e.g. on meta, before to_empty
    return plan


def _saved(root: nn.Module, part: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A copy of every tensor of the part at ``part``, to put back if a parametrization's
    right_inverse fails after the reset wrote them."""
    top = lookup(root, part)
    if top is None:
        return []
    tensors = {
        id(t): t
        for t in [*top.parameters(), *top.buffers()]
        if not uninitialized(t) and not t.is_meta  # a lazy layer's has no values yet
    }
    return [(t, t.detach().clone()) for t in tensors.values()]


def _plan_args(
    root: SeededModule, prefix: str, seed: int | None
) -> tuple[SeededModule, int, dict[str, int]]:
    """build_plan's arguments for a reset of the part at ``prefix`` with a per-call seed."""
    if seed is None:
        return root, root.root_seed, {}
    if not prefix:
        return root, seed, {}
    return root, root.root_seed, {prefix: seed}


def link_tree(root: SeededModule, top: nn.Module, path: str) -> None:
    """Link ``top`` (at ``path`` in ``root``'s tree) and everything under it to ``root``:
    nested SeededModules reset through it, layers get a reset that re-draws their part."""
    tables: set[int] = set()  # parametrize's own modules: they reset with their layer
    for sub_path, m in named_modules(top, path):
        if isinstance(m, ParametrizationList):
            tables.update(id(x) for x in m.modules())
        if m is root or id(m) in tables:
            continue
        remember_order(m)
        link = m.__dict__.get("_seeded_link")
        if not (isinstance(link, Link) and link.points_to(root, sub_path)):
            m.__dict__["_seeded_link"] = Link(root, sub_path, m)
        if (
            not isinstance(m, SeededModule)
            and not isinstance(m.__dict__.get("reset_parameters"), SubtreeReset)
            and (
                any(p is not None for p in params(m).values())
                or module_reset(m) is not None
                or default_handler(m) is not None
            )
        ):
            m.__dict__["reset_parameters"] = SubtreeReset(m)


def declarations(model: type[SeededModule] | SeededModule) -> Mapping[str, Declaration]:
    """The declared layers of a SeededModule class (or instance), in declaration order.

    Raises:
        TypeError: ``model`` is not a SeededModule class or instance.
    """
    cls = model if isinstance(model, type) else type(model)
    if not issubclass(cls, SeededModule):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise TypeError(f"declarations() takes a SeededModule class or instance, not {cls!r}")
    return MappingProxyType({n: d.declaration() for n, d in table_of(cls).items()})


def _on_module_registered(parent: nn.Module, name: str, child: nn.Module | None) -> None:
    """A module attached to a built model (by setattr, add_module, a container's append...)
    resets as part of it from then on."""
    if child is None or under_construction(parent) or isinstance(parent, ParametrizationList):
        return
    if isinstance(parent, SeededModule):
        if "_modules" not in parent.__dict__:
            return  # parent not initialized yet
        check_assigned(parent, name, child)
        root, prefix = root_of(parent)
    else:
        link = parent.__dict__.get("_seeded_link")
        outer = link.resolve() if isinstance(link, Link) else None
        if not isinstance(outer, SeededModule) or not isinstance(link, Link):
            return
        root, above = root_of(outer)
        prefix = join(above, link.path)
    forget(root)
    link_tree(root, child, join(prefix, name))


register_module_module_registration_hook(_on_module_registered)
