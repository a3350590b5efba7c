"""Carrying out a validated plan: one generator per unit, the global RNG left untouched.

Where values are drawn, in which dtype, and how they reach a CUDA, channels_last or sharded
tensor is ``_draw``'s concern: by default on the CPU in the tensor's dtype, so every device
holds the same values and no generator ever meets a tensor of another device.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ._draw import Draw, Generators, draw_into
from ._errors import PlanError
from ._progress import Bar, open_bar, wanted
from ._steps import Step
from ._torch import buffers, cuda_ready, params, uninitialized
from ._units import Plan, Unit, join, lookup

__all__ = [
    "GLOBAL_RNG_LOCK",
    "THREADS_ENV",
    "DrawFrom",
    "SavedRng",
    "check_threads",
    "execute",
    "global_rng_restored",
    "spread",
    "thread_count",
    "write_steps",
]

#: Held while the global RNG is borrowed for a module whose own reset knows no generator.
GLOBAL_RNG_LOCK = threading.RLock()


class SavedRng:
    """The CPU and (initialized) CUDA global RNG states, to put back later."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda: list[torch.Tensor] | None = None
        if cuda_ready():
            self.cuda = torch.cuda.get_rng_state_all()

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@contextmanager
def global_rng_restored() -> Generator[None, None, None]:
    """Restore the CPU and (initialized) CUDA global RNG states on exit."""
    saved = SavedRng()
    try:
        yield
    finally:
        saved.restore()


def _write(step: Step, t: torch.Tensor, gens: Generators, how: Draw, write: bool = True) -> None:
    """Draw ``step``'s values for ``t`` (into scratch and dropped, for ``write=False``)."""
    fill = step.fill
    assert fill is not None
    if step.user and write:
        fill = functools.partial(_checked, step)
    draw_into(t, fill, gens, how, step.draws, step.zero_row, write)


def _checked(step: Step, t: torch.Tensor, g: torch.Generator) -> None:
    """Run a scheme function and check that it did what one must: write every element of
    the tensor in place, from the generator alone (its old values are NaN while it runs)."""
    assert step.fill is not None
    data, requires_grad = t.data, t.requires_grad
    floating = t.is_floating_point()
    if floating:
        t.fill_(float("nan"))
    rng = torch.default_generator.get_state()
    try:
        step.fill(t, g)
    finally:
        drew = not torch.equal(torch.default_generator.get_state(), rng)
        if drew:
            torch.default_generator.set_state(rng)
        changed = t.data is not data and (
            t.shape != data.shape or t.dtype != data.dtype or t.data_ptr() != data.data_ptr()
        )
        if changed:
            t.data = data
        if t.requires_grad != requires_grad:
            t.requires_grad_(requires_grad)
            changed = True
    where = f"{step.path!r}: the scheme function {step.rule}"
    if drew:
        raise PlanError(
            f"{where} drew from the global RNG, which makes it depend on what ran before; "
            f"draw from the generator it is given, e.g. "
            f"torch.nn.init.normal_(tensor, std=0.02, generator=generator)"
        )
    if changed:
        raise PlanError(
            f"{where} replaced the tensor's data or changed its requires_grad; write into it "
            f"in place (tensor.copy_(...), torch.nn.init.*_(tensor, ..., generator=generator))"
        )
    if floating and not bool(torch.isfinite(t).all()):
        raise PlanError(
            f"{where} left NaN or inf in it: a scheme function must write every element, in "
            f"place, without reading the old values (they are NaN while it runs), and write "
            f"finite values"
        )


class _Running(threading.local):
    def __init__(self) -> None:
        self.modules: set[int] = set()


# The modules whose own reset is running on this thread. A third-party reset may reset its
# children through their installed reset; while it runs, those resets are the layers' own
# (drawing from the same stream), as when the module was constructed.
_running = _Running()


def fallback_running() -> bool:
    """Whether a module's own reset, run by seeded-init, is running on this thread."""
    return bool(_running.modules)


def _takes_generator(fn: Callable[..., object], *args: object) -> bool:
    try:
        fn(*args, generator=torch.Generator())
    except TypeError:
        return False
    return True


_init = torch.nn.init
# The *_like factories take generator= only in newer torch releases.
_LIKE: list[object] = [
    f for f in (torch.rand_like, torch.randn_like) if _takes_generator(f, torch.empty(0))
]
if _takes_generator(torch.randint_like, torch.empty(0), 2):
    _LIKE.append(torch.randint_like)


def _rand_like(g: torch.Generator, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return torch.empty_like(x, **kwargs).uniform_(0, 1, generator=g)  # ATen's rand_like


def _randn_like(g: torch.Generator, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return torch.empty_like(x, **kwargs).normal_(0, 1, generator=g)


def _randint_like(g: torch.Generator, x: torch.Tensor, *bounds: int, **kwargs: Any) -> torch.Tensor:
    low, high = (0, bounds[0]) if len(bounds) == 1 else bounds
    return torch.empty_like(x, **kwargs).random_(low, high, generator=g)


#: Where a ``*_like`` factory takes no generator= (torch before 2.6), the plain factory that
#: does, as ATen builds the ``*_like`` ones: the call draws from the layer's generator.
_OLD_LIKE: dict[object, Callable[..., torch.Tensor]] = {
    f: alt
    for f, alt in (
        (torch.rand_like, _rand_like),
        (torch.randn_like, _randn_like),
        (torch.randint_like, _randint_like),
    )
    if f not in _LIKE
}
_RANDOM: frozenset[object] = frozenset(
    {
        *_LIKE,
        _init.uniform_,
        _init.normal_,
        _init.trunc_normal_,
        _init.xavier_uniform_,
        _init.xavier_normal_,
        _init.kaiming_uniform_,
        _init.kaiming_normal_,
        _init.orthogonal_,
        _init.sparse_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.random_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.cauchy_,
        torch.Tensor.log_normal_,
        torch.Tensor.geometric_,
        torch.rand,
        torch.randn,
        torch.randint,
        torch.randperm,
        torch.normal,
        torch.bernoulli,
        torch.multinomial,
        torch.poisson,
    }
)


class DrawFrom(TorchFunctionMode):
    """Passes ``generator`` to every random function called without one, on this thread.

    A module's own reset written for the global RNG then draws from the layer's generator,
    and no other thread's use of the global RNG can disturb it.
    """

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if kwargs.get("generator") is None:
            if func in _RANDOM:
                kwargs = {**kwargs, "generator": self.generator}
            elif func in _OLD_LIKE and args:
                return _OLD_LIKE[func](self.generator, *args, **kwargs)
        return func(*args, **kwargs)


Poisoned = list[tuple[Step, str, torch.nn.Parameter]]


def _run_fallback(step: Step, g: torch.Generator, chosen: _Selection, poisoned: Poisoned) -> None:
    assert step.fallback is not None
    m = step.module
    if id(m) in _running.modules:
        return
    # A module's own reset may write its children's tensors too: what this reset does not
    # select is put back afterwards.
    keep = [
        (t, t.detach().clone())
        for _, t in _written(step)
        if not chosen.holds(t) or id(t) in step.foreign
    ]
    objects = _parameter_objects(m)
    # Its own parameters are poisoned first: one that is still NaN when its unit is done was
    # left unwritten (or read before written) and cannot be initialized reproducibly.
    own = [
        (name, p)
        for name, p in params(m).items()
        if p is not None
        and p.is_floating_point()
        and not p.is_meta
        and chosen.holds(p)
        and id(p) not in step.foreign
        and id(p) not in step.exempt
    ]
    with torch.no_grad():
        for _, p in own:
            p.fill_(float("nan"))
    poisoned.extend((step, name, p) for name, p in own)
    _running.modules.add(id(m))
    try:
        # Random calls are given the layer's generator. A call that takes none (rare in an
        # init) draws from the global RNG, which is seeded from the same stream for it, under
        # a lock, and restored after.
        with GLOBAL_RNG_LOCK, global_rng_restored():
            torch.default_generator.set_state(g.get_state())
            with torch.no_grad(), DrawFrom(g):
                step.fallback(m)
    finally:
        _running.modules.discard(id(m))
    with torch.no_grad():
        _keep_identity(step, objects)
        for t, old in keep:
            t.copy_(old)


def _parameter_objects(m: torch.nn.Module) -> list[tuple[torch.nn.Module, str, torch.nn.Parameter]]:
    return [
        (mod, name, p) for mod in m.modules() for name, p in params(mod).items() if p is not None
    ]


def _keep_identity(
    step: Step, objects: list[tuple[torch.nn.Module, str, torch.nn.Parameter]]
) -> None:
    """Put back parameter objects a module's reset replaced, with the new values: optimizers
    and ties keep working."""
    for mod, name, p in objects:
        now = params(mod).get(name)
        if now is p:
            continue
        if now is None or now.shape != p.shape or now.dtype != p.dtype:
            raise PlanError(
                f"{step.path!r}: {type(step.module).__qualname__}.reset_parameters() replaced "
                f"the parameter {name!r} by one of another shape or dtype; seeded-init keeps "
                f"parameter objects in place. Make it write into the existing parameter"
            )
        p.copy_(now)
        params(mod)[name] = p


def _check_written(unit: Unit, poisoned: Poisoned) -> None:
    for step, name, p in poisoned:
        if not torch.isnan(p).any():
            continue
        rel = join(step.path, name)[len(unit.path) :].lstrip(".")
        fix = (
            f"add params={{{rel!r}: ...}} to the declaration {unit.declared_by}"
            if unit.declared_by
            else f"declare {unit.path!r} in its parent with @seeded_init(params={{{rel!r}: ...}})"
        )
        raise PlanError(
            f"{step.path!r}: {type(step.module).__qualname__}.reset_parameters() does not write "
            f"its parameter {name!r} (or reads it before writing), so seeded-init cannot "
            f"initialize it reproducibly. Give it a rule: {fix}, e.g. 'ones'; or make "
            f"reset_parameters() write it"
        )


class _Selection:
    """The tensors a reset of the sub-layer at ``within`` writes: those the sub-layer holds,
    also under another name (a tied weight), and the layers whose own reset runs."""

    def __init__(self, root: torch.nn.Module, within: str) -> None:
        self.everything = not within
        self.tensors: set[int] = set()
        self.modules: set[int] = set()
        if within:
            part = root.get_submodule(within)
            self.modules = {id(m) for m in part.modules()}
            self.tensors = {
                id(t)
                for m in part.modules()
                for t in [*params(m).values(), *buffers(m).values()]
                if t is not None
            }

    def holds(self, t: torch.Tensor) -> bool:
        return self.everything or id(t) in self.tensors

    def __contains__(self, step: Step) -> bool:
        if self.everything:
            return True
        if step.fallback is not None:
            return id(step.module) in self.modules or any(
                id(t) in self.tensors for _, t in _written(step)
            )
        return id(step.tensor()) in self.tensors


def write_steps(steps: list[Step], g: torch.Generator) -> None:
    """Carry out built-in fill steps in order on ``g`` (for layers outside any plan)."""
    gens = Generators.of(g)
    for step in steps:
        t = step.tensor()
        if step.fallback is None and step.fill is not None and t is not None and t.numel():
            _write(step, t, gens, Draw())


def _run_unit(unit: Unit, chosen_steps: _Selection, how: Draw) -> None:
    gens = Generators(unit.seed)
    poisoned: Poisoned = []
    for step in unit.steps:
        if step.fallback is not None:
            _run_fallback(step, gens.cpu, chosen_steps, poisoned)
            continue
        chosen = step in chosen_steps
        t = step.tensor()
        if t is None or t.numel() == 0 or step.fill is None:
            continue
        if chosen or step.draws:
            _write(step, t, gens, how, write=chosen)
    _check_written(unit, poisoned)


def _written(step: Step) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) of what ``step`` may write: its tensor, or, for a module's own reset,
    every tensor of that module and its children."""
    if step.fallback is None:
        t = step.tensor()
        if t is not None:
            yield step.path, t
        return
    for name, t in [
        *step.module.named_parameters(remove_duplicate=False),
        *step.module.named_buffers(remove_duplicate=False),
    ]:
        yield f"{step.path}.{name}" if step.path else name, t


def _tensors(unit: Unit) -> Iterator[tuple[str, torch.Tensor]]:
    for step in unit.steps:
        yield from _written(step)


def execute(
    plan: Plan,
    within: str = "",
    construction: bool = False,
    how: Draw | None = None,
    threads: int | None = None,
) -> None:
    """Write every tensor of ``plan`` that the sub-layer at ``within`` holds ("" for all).

    During construction, units with tensors on the meta device are skipped (they have no
    storage to fill yet); otherwise meta tensors are an error, raised before any write.

    Units that run user code go first, one at a time; the others, on ``threads`` threads
    (see :func:`thread_count`).

    Raises:
        PlanError: a tensor to write is on the meta device; ${THREADS_ENV} is not a count.
    """
    how = Draw() if how is None else how
    count = thread_count(threads)
    chosen = _Selection(plan.root, within)
    units = [u for u in plan.units if any(s in chosen for s in u.steps)]
    if construction:
        mixed = [u for u in units if len({t.is_meta for _, t in _tensors(u)}) > 1]
        if mixed:
            raise PlanError(
                f"layer {mixed[0].path!r} has tensors both on the meta device and off it; "
                f"build each layer on one device (under one torch.device context)"
            )
        units = [u for u in units if not any(t.is_meta for _, t in _tensors(u))]
    else:
        meta = [
            p for u in units for s in u.steps if s in chosen for p, t in _written(s) if t.is_meta
        ]
        if meta:
            more = f" (and {len(meta) - 1} more)" if len(meta) > 1 else ""
            raise PlanError(
                f"reset_parameters(): {meta[0]!r}{more} is on the meta device, which holds no "
                f'values; allocate storage first with model.to_empty(device="cpu") (or '
                f'"cuda"), then call reset_parameters()'
            )
    fallible = [u for u in units if u.fallible]
    # User code may raise: run it first, with a copy to put back, so that an error leaves
    # every tensor as it was. The built-in fills cannot fail once the plan is validated.
    saved = [(t, t.detach().clone()) for u in fallible for _, t in _tensors(u)]
    objects = [
        o for u in fallible for s in u.steps if s.fallback for o in _parameter_objects(s.module)
    ]
    current = None
    try:
        for current in fallible:
            _run_unit(current, chosen, how)
    except BaseException as exc:  # Ctrl-C too: no NaN placeholder may stay behind
        with torch.no_grad():
            for mod, name, p in objects:  # parameter objects a failed reset replaced
                params(mod)[name] = p
            for t, old in saved:
                t.copy_(old)
        if not isinstance(exc, Exception):
            raise
        restored = "every tensor the reset would write was restored to its value before it"
        if isinstance(exc, PlanError):
            raise PlanError(f"{exc}; {restored}") from exc
        assert current is not None
        layer = lookup(plan.root, current.path)
        who = current.declared_by or type(layer).__qualname__
        raise PlanError(
            f"initializing layer {current.path!r} ({who}) failed in user code: {exc!r}; {restored}"
        ) from exc
    run_parallel([u for u in units if not u.fallible], chosen, how, count)


#: The environment variable that sets the default thread count of a reset.
THREADS_ENV = "SEEDED_INIT_THREADS"
#: Units that fill fewer elements than this run on the calling thread: their time goes to
#: Python bookkeeping, which holds the GIL, so other threads would only contend for it.
_MIN_PARALLEL = 1 << 16

_pool_lock = threading.Lock()
# The one pool, as large as the largest count asked for so far, and that size.
_pool: list[tuple[ThreadPoolExecutor, int]] = []


def check_threads(threads: object, where: str) -> int | None:
    """Validate a ``threads=`` a user gave (None: the default); raise PlanError if wrong."""
    if threads is None or (type(threads) is int and threads >= 1):
        return threads
    raise PlanError(
        f"{where}threads={threads!r}; write a positive int (1 resets on the calling thread "
        f"alone), or leave it None for ${THREADS_ENV} or else torch.get_num_threads()"
    )


def thread_count(threads: int | None = None) -> int:
    """The threads a reset runs on: ``threads``, else ${THREADS_ENV}, else torch's own
    intra-op thread count (the machine's cores unless set otherwise)."""
    if threads is not None:
        return threads
    text = os.environ.get(THREADS_ENV, "").strip()
    if text:
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise PlanError(
                f"${THREADS_ENV}={text!r}; set it to a positive int (1 resets serially), or "
                f"unset it for torch.get_num_threads()"
            )
        return int(text)
    return max(1, torch.get_num_threads())


def _start(count: int, jobs: list[Callable[[], None]]) -> list[Future[None]]:
    """Run ``jobs`` on ``count`` pool threads at once (each takes the next job until none is
    left). One pool serves every count: it grows to the largest asked for, and the smaller
    one it replaces is shut down after it finishes what it was given (given under this lock,
    so no reset gives it more)."""
    queue = collections.deque(jobs)

    def take() -> None:
        while True:
            try:
                job = queue.popleft()
            except IndexError:
                return
            job()

    with _pool_lock:
        if not _pool or _pool[0][1] < count:
            old = _pool[0][0] if _pool else None
            _pool[:] = [(ThreadPoolExecutor(count, "seeded-init"), count)]
            if old is not None:
                old.shutdown(wait=False)
        pool = _pool[0][0]
        return [pool.submit(take) for _ in range(min(count, len(jobs)))]


def _cost(unit: Unit) -> int:
    """About how many elements a unit fills: what its time is proportional to."""
    total = 0
    for step in unit.steps:
        t = step.tensor()
        if t is not None and not uninitialized(t):
            total += t.numel()
    return total


def run_parallel(units: list[Unit], chosen: _Selection, how: Draw, count: int) -> None:
    """Run built-in units, which draw each from its own generator into tensors of its own,
    on ``count`` threads: the values are the same for every thread count."""
    sized = count > 1 or wanted()  # costs order the pool's work, and count on the bar
    spread(
        [(_cost(u) if sized else 0, functools.partial(_run_unit, u, chosen, how)) for u in units],
        count,
    )


def spread(jobs: list[tuple[int, Callable[[], None]]], count: int) -> None:
    """Run independent ``(cost, job)`` pairs on ``count`` threads.

    Costly jobs (at least ``_MIN_PARALLEL`` elements) go to a pool, largest first (torch's
    fill kernels release the GIL); the others run on the calling thread meanwhile. Returns
    when every job is done; raises the first error.
    """
    with open_bar(lambda: sum(cost for cost, _ in jobs)) as bar:
        if bar is not None:
            jobs = [(cost, _ticking(job, cost, bar)) for cost, job in jobs]
        _spread(jobs, count)


def _ticking(job: Callable[[], None], cost: int, bar: Bar) -> Callable[[], None]:
    def run() -> None:
        job()
        bar(cost)

    return run


def _spread(jobs: list[tuple[int, Callable[[], None]]], count: int) -> None:
    large = sorted((j for j in jobs if j[0] >= _MIN_PARALLEL), key=lambda j: -j[0])
    if count <= 1 or len(large) <= 1:
        for _, job in jobs:
            job()
        return
    futures: list[Future[None]] = []
    # thread-local state, for the workers
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def on_worker(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                job()

        return run

    try:
        futures.extend(_start(count, [on_worker(job) for _, job in large]))
        for cost, job in jobs:
            if cost < _MIN_PARALLEL:
                job()
    finally:  # no write may go on after this returns or raises
        errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:
        raise errors[0]
