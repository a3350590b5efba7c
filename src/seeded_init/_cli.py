"""``python -m seeded_init``: the init plan, fingerprint and distribution check of any model.

    python -m seeded_init plan MODULE:FACTORY [--rules MODULE:RULES] [--seed N] [--json] [--meta]
    python -m seeded_init diff BEFORE AFTER [--rules ...] [--seed N] [--meta]  (devices aside)
    python -m seeded_init check MODULE:FACTORY [--rules ...] [--seed N] [--png PATH]

``MODULE`` is an importable module (``examples.gpt2``) or a file (``examples/02_gpt2.py``);
``FACTORY`` a callable in it that takes no arguments and returns the model; ``RULES`` an
:class:`InitRules` (or a callable returning one) for a model that is not a SeededModule (a
plain model without rules gets PyTorch's defaults, each layer from its derived seed). Exit
status: 0 done (no difference, every check passed), 1 a difference or a failed check, 2 an
error, printed as one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import torch
from torch import nn

from ._module import SeededModule
from ._provenance import Provenance, without_devices
from ._records import InitPlan
from ._rules import InitRules
from ._seeds import check_seed

__all__ = ["main"]

_PROG = "python -m seeded_init"


class _Refused(Exception):
    """A usage error: said in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


def _parser() -> _Parser:
    parser = _Parser(prog=_PROG, description="Init plans, fingerprints and checks of a model.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_options(p: argparse.ArgumentParser, many: bool = False) -> None:
        p.add_argument(
            "--rules",
            metavar="MODULE:RULES",
            help="the InitRules of a model that is not a SeededModule",
        )
        p.add_argument(
            "--seed", type=_seed, metavar="N", help="the root seed (default: the model's)"
        )
        meta = "build the models" if many else "build the model"
        p.add_argument(
            "--meta",
            action="store_true",
            help=f"{meta} on the meta device: the plan without allocating (no fingerprint)",
        )

    plan = commands.add_parser("plan", help="print the init plan and the fingerprint")
    plan.add_argument("factory", metavar="MODULE:FACTORY")
    model_options(plan)
    plan.add_argument(
        "--json",
        action="store_true",
        help="print the plan and fingerprint as JSON (a Provenance), for diff or a checkpoint",
    )
    diff = commands.add_parser(
        "diff", help="what changes from one plan to another (exit 1 if anything does)"
    )
    diff.add_argument(
        "before", metavar="BEFORE", help="a JSON file of plan --json, or MODULE:FACTORY"
    )
    diff.add_argument("after", metavar="AFTER", help="the same")
    model_options(diff, many=True)
    check = commands.add_parser(
        "check", help="each parameter's mean and std against its scheme (exit 1 if one fails)"
    )
    check.add_argument("factory", metavar="MODULE:FACTORY")
    check.add_argument("--rules", metavar="MODULE:RULES", help="as for plan")
    check.add_argument("--seed", type=_seed, metavar="N", help="as for plan")
    check.add_argument(
        "--tolerance",
        type=float,
        default=5.0,
        metavar="Z",
        help="how many standard errors a mean or std may be off (default 5)",
    )
    check.add_argument("--png", metavar="PATH", help="also draw per-layer histograms (matplotlib)")
    return parser


def _seed(text: str) -> int:
    try:
        return check_seed(int(text), "the seed")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _load(ref: str, what: str) -> object:
    """The object ``MODULE:NAME`` names (``NAME`` may be dotted); a file path for MODULE."""
    with _user_code(f"{what} {ref!r}"):
        return _find(ref, what)


@contextlib.contextmanager
def _user_code(where: str) -> Generator[None, None, None]:
    """Run a module's or factory's code: what it prints goes to stderr (stdout is the
    output, e.g. JSON), and ``sys.exit`` in it is an error, not the command's exit."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except SystemExit as exc:
        raise _Refused(
            f"{where} called sys.exit({exc.code!r}) instead of returning; make it return"
        ) from exc


def _find(ref: str, what: str) -> object:
    module_name, sep, name = ref.rpartition(":")
    if not sep or not module_name or not name:
        raise _Refused(f"{what} {ref!r} is not MODULE:NAME, e.g. examples/02_gpt2.py:tiny")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise _Refused(f"{what} {ref!r}: no file {module_name!r}")
        module = _from_file(path, f"{what} {ref!r}")
    else:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # as python -m does: modules of the current directory
        module = importlib.import_module(module_name)
    found: object = module
    for part in name.split("."):
        if not hasattr(found, part):
            raise _Refused(f"{what} {ref!r}: {module_name} has no {name!r}")
        found = getattr(found, part)
    return found


_files: dict[Path, ModuleType] = {}


def _from_file(path: Path, where: str) -> ModuleType:
    """The module of a Python file, run once (a factory and rules may name one file)."""
    key = path.resolve()
    module = _files.get(key)
    if module is None:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise _Refused(f"{where}: {str(path)!r} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickle look their module up
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # as running the file would: its siblings import
            sys.path.insert(0, folder)
        spec.loader.exec_module(module)
        _files[key] = module
    return module


def _model(ref: str, meta: bool) -> nn.Module:
    factory = _load(ref, "factory")
    if not callable(factory):
        raise _Refused(f"factory {ref!r} is {type(factory).__name__}, not a callable")
    with _user_code(f"factory {ref!r}"):
        if meta:
            with torch.device("meta"):
                model = factory()
        else:
            model = factory()
    if not isinstance(model, nn.Module):
        raise _Refused(f"factory {ref!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _rules(ref: str | None, model: nn.Module) -> InitRules | None:
    if isinstance(model, SeededModule):
        if ref is not None:
            raise _Refused(
                f"--rules {ref!r}: {type(model).__qualname__} is a SeededModule, initialized by "
                f"its own declarations; leave --rules out"
            )
        return None
    if ref is None:
        return InitRules()
    rules = _load(ref, "--rules")
    if callable(rules) and not isinstance(rules, InitRules):
        with _user_code(f"--rules {ref!r}"):
            rules = rules()
    if not isinstance(rules, InitRules):
        raise _Refused(f"--rules {ref!r} is {type(rules).__name__}, not an InitRules")
    return rules


def _initialized(
    ref: str, rules_ref: str | None, seed: int | None, meta: bool
) -> tuple[nn.Module, InitRules | None, Provenance]:
    """The model, reset with ``seed`` (unless on meta), and its provenance."""
    model = _model(ref, meta)
    rules = _rules(rules_ref, model)
    if not meta:
        if rules is not None:
            rules.reset_parameters(model, seed)
        elif seed is not None:
            assert isinstance(model, SeededModule)
            model.reset_parameters(seed)
    prov = Provenance.of(model, rules, seed=seed, weights=not meta)
    return model, rules, prov


def _read(source: str, rules_ref: str | None, seed: int | None, meta: bool) -> Provenance:
    path = Path(source)
    named = source.replace("\\", "/").rpartition("/")[2]
    if ":" not in named and not path.is_file():
        raise _Refused(f"{source!r}: no such file (a plan is a JSON file, a model MODULE:FACTORY)")
    if path.is_file() and ":" not in named:
        text = path.read_text()
        try:
            return Provenance.from_json(text)
        except ValueError as exc:
            try:
                return Provenance(InitPlan.from_json(text), None)
            except ValueError:
                raise _Refused(f"{source!r} is neither a plan nor a provenance: {exc}") from exc
    return _initialized(source, rules_ref, seed, meta)[2]


def _plan(args: argparse.Namespace) -> int:
    _, _, prov = _initialized(args.factory, args.rules, args.seed, args.meta)
    if args.json:
        print(prov.to_json())
        return 0
    print(prov.plan)
    print()
    if prov.digest is None:
        print("fingerprint: none (built on the meta device: no weights)")
    else:
        print(f"fingerprint {prov.digest}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    before = _read(args.before, args.rules, args.seed, args.meta)
    after = _read(args.after, args.rules, args.seed, args.meta)
    change = without_devices(before.plan).diff(without_devices(after.plan))
    print(change)
    same_weights = before.digest is None or after.digest is None or before.digest == after.digest
    if not same_weights:
        print(f"fingerprint {before.digest} -> {after.digest}")
    return 1 if change or not same_weights else 0


def _check(args: argparse.Namespace) -> int:
    from ._stats import check_distributions

    if args.png is not None:
        _writable(args.png)
    model, _, prov = _initialized(args.factory, args.rules, args.seed, False)
    result = check_distributions(model, prov.plan, tolerance=args.tolerance)
    print(result)
    if args.png:
        from ._plot import plot_distributions

        plot_distributions(model, prov.plan, args.png)
        print(f"histograms: {args.png}")
    return 0 if result.ok else 1


def _writable(png: str) -> None:
    """Refuse a --png path that cannot be written, before the check runs."""
    path = Path(png)
    if not png or path.is_dir():
        raise _Refused(f"--png {png!r} is not a file name; write e.g. --png histograms.png")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise _Refused(f"--png {png!r}: cannot write in {str(folder)!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        command = {"plan": _plan, "diff": _diff, "check": _check}[args.command]
        status = command(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:  # the reader stopped reading (| head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit says nothing
        return 0
    except _Refused as exc:
        _say(f"{_PROG}: error: {exc}")
    except Exception as exc:  # one line, whatever the model's code raised
        _say(f"{_PROG}: error: {type(exc).__name__}: {exc}")
    return 2


def _say(line: str) -> None:
    print(" ".join(line.split()), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
