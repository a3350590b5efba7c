"""Construction: build declared layers after ``__init__``, skip PyTorch's throwaway init,
initialize the new model once, and leave the global RNG as it was.

The state is per thread. The outermost SeededModule under construction owns it: nested ones
(blocks built inside its ``__init__``) are initialized as part of its tree, once, at its end.
"""

from __future__ import annotations

import sys
import threading
import types
import typing
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook
from torch.overrides import TorchFunctionMode

from ._defaults import default_handler
from ._errors import ConstructionError, DeclarationError, SeededInitError
from ._execute import GLOBAL_RNG_LOCK, SavedRng, write_steps
from ._layer import table_of
from ._parametrized import remember_order
from ._torch import buffers, children, params, uninitialized

if TYPE_CHECKING:
    from ._layer import DeclaredLayer
    from ._module import SeededModule

__all__ = ["begin", "build_missing", "check_assigned", "end", "under_construction"]

# Random in-place fills that layer constructors run on their fresh parameters. During a
# SeededModule's construction they become zero fills for the parameters of layer types whose
# whole init seeded-init replays (see _defaults): the reset at the end writes every one of
# those, and a layer built but left out of the model is initialized at the end too. A layer
# of another type may initialize in __init__ what its reset_parameters() never touches, so
# its fills run (on the global RNG, which construction restores).
_SKIPPED: frozenset[object] = frozenset(
    {
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.trunc_normal_,
        nn.init.xavier_uniform_,
        nn.init.xavier_normal_,
        nn.init.kaiming_uniform_,
        nn.init.kaiming_normal_,
        nn.init.orthogonal_,
        nn.init.sparse_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
    }
)


# In-place tensor methods that change no value.
_NOT_WRITES = frozenset({"requires_grad_", "share_memory_", "detach_", "retain_grad"})
_SETTERS = frozenset({"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__"})


class _SkipFreshInit(TorchFunctionMode):
    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        if isinstance(target, torch.Tensor) and _writes(func):
            _refuse_lost_write(func, target)
        if func in _SKIPPED:
            refs = _state.replayed.get(id(target))
            param = None if refs is None else refs[0]()
            if param is not None and id(param) == id(target):
                with torch.no_grad():
                    return param.zero_()
        return func(*args, **kwargs)


def _writes(func: Callable[..., Any]) -> bool:
    name: str = getattr(func, "__name__", "")
    return name in _SETTERS or (
        name.endswith("_") and not name.startswith("_") and name not in _NOT_WRITES
    )


def _refuse_lost_write(func: Callable[..., Any], target: torch.Tensor) -> None:
    """A parameter written by a SeededModule's ``__init__`` (or a factory it runs) would lose
    that value to the reset that ends the construction: say so instead of dropping it."""
    param: nn.Parameter | None = target if isinstance(target, nn.Parameter) else None
    if param is None and not target.is_meta and target.numel():
        ref = _state.parameters.get(target.data_ptr())  # e.g. module.weight.data.normal_()
        param = None if ref is None else ref()
        if param is None or param.data_ptr() != target.data_ptr():
            return
    if param is None:
        return
    writer = _constructing_module()
    if writer is None or not under_construction(writer):
        return  # a layer's constructor initializing its own parameters
    name = next((n for n, p in writer.named_parameters(remove_duplicate=False) if p is param), None)
    what = f"its parameter {name!r}" if name else "a parameter"
    refs = _state.replayed.get(id(param))
    layer = None if refs is None or name else refs[1]()
    if layer is not None:  # not in the model yet: a layer the factory (or __init__) builds
        attr = next((n for n, p in params(layer).items() if p is param), "?")
        what = f"the parameter {attr!r} of the {type(layer).__name__} it builds"
    op: str = getattr(func, "__name__", str(func))
    op = f"torch.nn.init.{op}" if getattr(func, "__module__", "") == "torch.nn.init" else op
    raise ConstructionError(
        f"{type(writer).__qualname__}.__init__ (or a factory it runs) writes {what} with "
        f"{op}; the construction of a SeededModule ends with reset_parameters(), which "
        f"re-initializes every parameter, so this value would be lost. Declare it instead: "
        f"@seeded_init(scheme=...) on the layer, params={{...}} for one parameter, or a "
        f"scheme function (tensor, generator) -> None for values of your own"
    )


def _constructing_module() -> nn.Module | None:
    """The module whose ``__init__`` is the nearest on the call stack."""
    frame: FrameType | None = sys._getframe(2)  # pyright: ignore[reportPrivateUsage]
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__init__" and code.co_argcount:
            me = frame.f_locals.get(code.co_varnames[0])  # "self", whatever its name
            if isinstance(me, nn.Module):
                return me
        frame = frame.f_back
    return None


def _on_parameter_registered(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
    """Note the parameters registered during a construction, and those of replayed types."""
    st = _state
    if st.outermost is None:
        return
    remember_order(module, name)
    if param is None:
        return
    if not uninitialized(param) and not param.is_meta and param.numel():
        st.parameters[param.data_ptr()] = weakref.ref(param)
    if default_handler(module) is not None:
        st.replayed[id(param)] = (weakref.ref(param), weakref.ref(module))


register_module_parameter_registration_hook(_on_parameter_registered)


class _State(threading.local):
    def __init__(self) -> None:
        self.depth: dict[int, int] = {}
        self.building: dict[int, set[str]] = {}
        self.built: dict[int, set[str]] = {}  # the layers each model's factories built
        self.outermost: SeededModule | None = None
        self.made: list[SeededModule] = []
        self.mode: _SkipFreshInit | None = None
        self.rng: SavedRng | None = None
        self.replayed: dict[int, tuple[weakref.ref[nn.Parameter], weakref.ref[nn.Module]]] = {}
        self.parameters: dict[int, weakref.ref[nn.Parameter]] = {}  # by data_ptr


_state = _State()


def under_construction(m: nn.Module) -> bool:
    """Whether ``m``'s ``__init__`` is running on this thread."""
    return id(m) in _state.depth


def begin(m: SeededModule) -> None:
    if "_seeded_table" not in type(m).__dict__:
        raise DeclarationError(
            f"{type(m).__qualname__} was never prepared as a SeededModule: a base class's "
            f"__init_subclass__ must call super().__init_subclass__(**kwargs)"
        )
    st = _state
    n = st.depth.get(id(m), 0)
    st.depth[id(m)] = n + 1
    if n:
        return
    st.building[id(m)] = set()
    st.built[id(m)] = set()
    st.made.append(m)
    if st.outermost is None:
        st.outermost = m
        with GLOBAL_RNG_LOCK:
            st.rng = SavedRng()
        st.mode = _SkipFreshInit()
        st.mode.__enter__()  # type: ignore[no-untyped-call]


def end(m: SeededModule, ok: bool) -> None:
    st = _state
    n = st.depth[id(m)] - 1
    if n:
        st.depth[id(m)] = n
        return
    try:
        if ok:
            _build_declared(m)
    except BaseException:
        ok = False
        raise
    finally:
        del st.depth[id(m)]
        st.building.pop(id(m), None)
        st.built.pop(id(m), None)
        if not ok and m in st.made:
            st.made.remove(m)  # a failed construction leaves no model to initialize
        if st.outermost is m:
            _finish_outermost(ok)


def _finish_outermost(ok: bool) -> None:
    from ._module import reset_tree  # import cycle: _module builds on this module

    st = _state
    made, rng, mode, replayed = st.made, st.rng, st.mode, st.replayed
    st.outermost, st.made, st.rng, st.mode, st.replayed = None, [], None, None, {}
    st.parameters = {}
    assert mode is not None and rng is not None
    mode.__exit__(None, None, None)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
    try:
        if ok:
            covered: set[int] = set()
            for m in made:  # in the order their construction began: outer before inner
                if id(m) not in covered:
                    reset_tree(m, construction=True)
                    covered.update(id(x) for x in m.modules())
            _initialize_left_out(replayed, covered)
    finally:
        with GLOBAL_RNG_LOCK:
            rng.restore()


def _initialize_left_out(
    replayed: dict[int, tuple[weakref.ref[nn.Parameter], weakref.ref[nn.Module]]],
    covered: set[int],
) -> None:
    """Layers built during the construction but outside every model (a plain list, a
    temporary) get PyTorch's init as PyTorch would have drawn it: from the global RNG."""
    left_out: dict[int, nn.Module] = {}
    for param_ref, module_ref in replayed.values():
        module = module_ref()
        if param_ref() is not None and module is not None and id(module) not in covered:
            left_out[id(module)] = module
    if not left_out:
        return
    g = torch.Generator()
    g.set_state(torch.default_generator.get_state())
    for module in left_out.values():
        handler = default_handler(module)
        if handler is not None and not any(p.is_meta for p in module.parameters()):
            write_steps(handler(module, "")[0], g)


def _build_declared(m: SeededModule) -> None:
    """Build the factories not yet built, in declaration order; check annotated attributes."""
    built = _state.built.get(id(m), set())
    for name, decl in table_of(type(m)).items():
        present = name in children(m) or name in params(m)
        if decl.factory is not None and not present:
            build_missing(m, decl)
        elif decl.factory is not None and present and name not in built:
            held = type(getattr(m, name)).__name__
            raise ConstructionError(
                f"{type(m).__qualname__}.{name} is declared by a factory, but __init__ assigned "
                f"self.{name} = {held}(...) before the factory ran, so the factory would never "
                f"run. Remove the assignment, or declare {name} with Annotated[...] instead "
                f"of a factory"
            )
        elif name in m.__dict__ and m.__dict__[name] is None:
            # an optional layer left out: registered as None, as nn.Module does for modules
            del m.__dict__[name]
            children(m)[name] = None
        elif name in m.__dict__:
            held = type(m.__dict__[name]).__name__
            raise ConstructionError(
                f"{type(m).__qualname__}.{name} is a declared layer; it holds an nn.Module or "
                f"nn.Parameter, not {held}. Assign a layer, e.g. self.{name} = nn.Linear(...)"
            )
        elif name in buffers(m):
            raise ConstructionError(
                f"{type(m).__qualname__}.{name} is a declared layer, but __init__ registered "
                f"it as a buffer; assign self.{name} = nn.Parameter(tensor) or a layer"
            )
        elif not present:
            raise ConstructionError(
                f"{type(m).__qualname__}.{name} is declared (Annotated) but __init__ never "
                f"assigned it; write self.{name} = ... in __init__, or drop the declaration"
            )
        else:
            check_assigned(m, name, getattr(m, name))


def check_assigned(m: SeededModule, name: str, value: object) -> None:
    """A layer assigned to a declared name has the declared type (None is allowed)."""
    decl = table_of(type(m)).get(name)
    if decl is not None and value is not None:
        _check_type(m, decl, value, decl.annotation)


def build_missing(m: SeededModule, decl: DeclaredLayer[Any]) -> object:
    """Called by the descriptor for a declared layer that is not built yet."""
    name = decl.name
    building = _state.building.get(id(m))
    if decl.factory is None or building is None or name in building:
        # Not buildable now: an annotated layer not yet assigned, a model already built whose
        # layer was deleted, or the check nn.Module makes while registering it.
        raise AttributeError(f"{type(m).__qualname__!r} object has no attribute {name!r}")
    where = f"{type(m).__qualname__}.{name}"
    building.add(name)
    try:
        value = decl.factory(m)
        _check_type(m, decl, value, decl.annotation)
        if isinstance(value, nn.Parameter):
            m.register_parameter(name, value)
        else:
            m.add_module(name, value)
        _state.built[id(m)].add(name)
    except AttributeError as exc:
        if exc.name in building:
            raise ConstructionError(
                f"{where}: its factory reads self.{exc.name}, whose factory is running and "
                f"reads self.{name}: the two factories read each other. Build one of them "
                f"from the inputs of the other, not from the layer"
            ) from exc
        raise ConstructionError(f"{where}: its factory failed: {exc}") from exc
    except Exception as exc:
        if not isinstance(exc, SeededInitError) and sys.version_info >= (3, 11):
            exc.add_note(f"(raised while building {where} by its factory)")
        raise
    finally:
        building.discard(name)
    return value


def _check_type(m: nn.Module, decl: DeclaredLayer[Any], value: object, expected: object) -> None:
    where = f"{type(m).__qualname__}.{decl.name}"
    if not isinstance(value, nn.Module | nn.Parameter):
        kind, hint = type(value).__name__, ""
        if isinstance(value, torch.Tensor):
            hint = " (a plain Tensor: wrap it as nn.Parameter(tensor))"
        elif isinstance(value, type) and issubclass(value, nn.Module):
            hint = f" (the class {value.__name__} itself: call it, {value.__name__}(...))"
        raise ConstructionError(
            f"{where}: the factory returned {kind}{hint}; a declared layer is an "
            f"nn.Module or an nn.Parameter, e.g. `return nn.Linear(...)`"
        )
    allowed = _classes(expected)
    if allowed and not isinstance(value, allowed):
        names = " | ".join(c.__name__ for c in allowed)
        raise ConstructionError(
            f"{where} is declared as {names} but holds a {type(value).__name__}; return or "
            f"assign a {names}, or change the declared type"
        )


def _classes(tp: object) -> tuple[type, ...]:
    """The classes an annotation admits, or () when it cannot be checked at run time."""
    if tp is None:
        return ()
    if isinstance(tp, type):
        return (tp,)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            sub = _classes(arg)
            if not sub:
                return ()
            out += sub
        return tuple(out)
    if isinstance(origin, type):
        return (origin,)
    return ()
