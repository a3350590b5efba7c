"""seeded-init against PyTorch, side by side in one process: medians of several runs, ratios.

For each model:
  (a) PyTorch's default init: each module's own ``reset_parameters()``, from the global RNG;
  (b) a hand-written loop of ``torch.nn.init`` calls, one ``torch.Generator`` per layer;
  (c) ``model.reset_parameters(threads=1)``;
  (d) ``model.reset_parameters()`` on every core (``torch.get_num_threads()``).
Then construction of a declared model against the same plain ``nn.Module``, meta ->
``to_empty`` -> reset against eager construction, the single-core ``uniform_`` fill rate
(the hardware reference) and, in a fresh process, the peak memory of a 1B-parameter reset.

Run: ``.venv/bin/python benchmarks/bench.py`` (a few minutes); ``--quick`` shrinks the models
to check that it runs (its ratios are not the performance targets', which need full sizes).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from seeded_init import SeededModule, seeded_init

STD = 0.02


# -- the models ------------------------------------------------------------------------------


class Block(SeededModule):
    """A GPT-2 block: the projections into the residual stream scaled by 1/sqrt(2 n_layer)."""

    def __init__(self, d: int, n_layer: int) -> None:
        super().__init__()
        self.d, self.n_layer = d, n_layer
        self.ln_1 = nn.LayerNorm(d)
        self.ln_2 = nn.LayerNorm(d)

    @seeded_init(scheme="normal", std=STD)
    def qkv(self) -> nn.Linear:
        return nn.Linear(self.d, 3 * self.d)

    @seeded_init(scheme="normal", std=lambda b: STD / math.sqrt(2 * b.n_layer))
    def proj(self) -> nn.Linear:
        return nn.Linear(self.d, self.d)

    @seeded_init(scheme="normal", std=STD)
    def fc(self) -> nn.Linear:
        return nn.Linear(self.d, 4 * self.d)

    @seeded_init(scheme="normal", std=lambda b: STD / math.sqrt(2 * b.n_layer))
    def out(self) -> nn.Linear:
        return nn.Linear(4 * self.d, self.d)


class GPT(SeededModule):
    def __init__(self, vocab: int, context: int, d: int, n_layer: int) -> None:
        super().__init__()
        self.vocab, self.context, self.d = vocab, context, d
        self.blocks = nn.ModuleList(Block(d, n_layer) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    @seeded_init(scheme="normal", std=STD)
    def wte(self) -> nn.Embedding:
        return nn.Embedding(self.vocab, self.d)

    @seeded_init(scheme="normal", std=0.01)
    def wpe(self) -> nn.Embedding:
        return nn.Embedding(self.context, self.d)


def gpt_loop(m: GPT) -> None:
    """(b) for the GPT: its scheme as nn.init calls, one generator per layer."""
    for i, layer in enumerate(m.modules()):
        g = torch.Generator().manual_seed(i)
        if isinstance(layer, nn.Linear) and layer is not m.head:
            residual = layer.out_features == m.d  # proj and out write into the residual
            std = STD / math.sqrt(2 * len(m.blocks)) if residual else STD
            nn.init.normal_(layer.weight, 0.0, std, generator=g)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding):
            nn.init.normal_(layer.weight, 0.0, 0.01 if layer is m.wpe else STD, generator=g)
        elif isinstance(layer, nn.LayerNorm):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class Bottleneck(SeededModule):
    """ResNet-50's bottleneck: 1x1, 3x3, 1x1 convolutions, each with a BatchNorm."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.cin, self.width, self.stride = cin, width, stride
        self.bn1, self.bn2, self.bn3 = (nn.BatchNorm2d(c) for c in (width, width, 4 * width))
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != 4 * width:
            self.down = nn.Sequential(
                nn.Conv2d(cin, 4 * width, 1, stride, bias=False), nn.BatchNorm2d(4 * width)
            )

    @seeded_init(scheme="kaiming_normal", mode="fan_out", nonlinearity="relu")
    def conv1(self) -> nn.Conv2d:
        return nn.Conv2d(self.cin, self.width, 1, bias=False)

    @seeded_init(scheme="kaiming_normal", mode="fan_out", nonlinearity="relu")
    def conv2(self) -> nn.Conv2d:
        return nn.Conv2d(self.width, self.width, 3, self.stride, 1, bias=False)

    @seeded_init(scheme="kaiming_normal", mode="fan_out", nonlinearity="relu")
    def conv3(self) -> nn.Conv2d:
        return nn.Conv2d(self.width, 4 * self.width, 1, bias=False)


class ResNet50(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(64)
        layers: list[nn.Module] = []
        cin = 64
        for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = 4 * width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, 1000)  # undeclared: PyTorch's own Linear init

    @seeded_init(scheme="kaiming_normal", mode="fan_out", nonlinearity="relu")
    def conv1(self) -> nn.Conv2d:
        return nn.Conv2d(3, 64, 7, 2, 3, bias=False)


def resnet_loop(m: ResNet50) -> None:
    """(b) for the ResNet: torchvision's init as nn.init calls, one generator per layer."""
    for i, layer in enumerate(m.modules()):
        g = torch.Generator().manual_seed(i)
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", generator=g)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.BatchNorm2d.reset_parameters(layer)  # PyTorch's (the instance has seeded-init's)
        elif isinstance(layer, nn.Linear):
            linear_loop(layer, g)


def linear_loop(layer: nn.Linear, g: torch.Generator) -> None:
    """PyTorch's Linear init, as nn.init calls on ``g``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
    bound = 1 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=g)


class Stack(SeededModule):
    """``n`` undeclared Linear(width, width) layers: PyTorch's init, a seed per path."""

    def __init__(self, n: int, width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(n))


def stack_loop(m: Stack) -> None:
    for i, layer in enumerate(m.layers):
        assert isinstance(layer, nn.Linear)
        linear_loop(layer, torch.Generator().manual_seed(i))


def torch_default(m: nn.Module) -> None:
    """(a): each module's own reset_parameters() as PyTorch defines it, global RNG."""
    for layer in m.modules():
        if isinstance(layer, SeededModule):
            continue
        reset = getattr(type(layer), "reset_parameters", None)
        if callable(reset):
            reset(layer)


# -- timing ----------------------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``repeat`` calls, after one warm-up call."""
    fn()
    times: list[float] = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Row:
    model: str
    params: int
    a: float
    b: float
    c: float
    d: float


M = TypeVar("M", bound=SeededModule)


def compare(name: str, make: Callable[[], M], loop: Callable[[M], None], repeat: int) -> Row:
    """(a) to (d) on the model ``make()`` builds; ``loop`` is its (b)."""
    model = make()
    params = sum(p.numel() for p in model.parameters())

    def a() -> None:
        with torch.no_grad():
            torch_default(model)

    def b() -> None:
        with torch.no_grad():
            loop(model)

    ta, tb, tc, td = medians(
        [a, b, lambda: model.reset_parameters(threads=1), model.reset_parameters], repeat
    )
    return Row(name, params, ta, tb, tc, td)


def medians(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """The median wall time of each of ``fns``, run in turn ``repeat`` times after one
    warm-up round: interleaved, so that a slow spell of the machine hits them all alike, and
    each round starting one later, so that none always runs after the same one."""
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeat + 1):
        for i in range(len(fns)):
            k = (i + round_) % len(fns)
            gc.collect()
            start = time.perf_counter()
            fns[k]()
            if round_:
                times[k].append(time.perf_counter() - start)
    return [statistics.median(kept) for kept in times]


def first_and_later(n: int, repeat: int) -> tuple[float, float]:
    """Median times of a fresh model's first reset, which builds and validates the plan,
    and of the next, which reuses it (the model of ``n`` tiny layers)."""
    first: list[float] = []
    later: list[float] = []
    for _ in range(repeat):
        m = Stack(n, 4)
        gc.collect()  # before each timed call, as everywhere here
        start = time.perf_counter()
        m.reset_parameters(threads=1)
        first.append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        m.reset_parameters(threads=1)
        later.append(time.perf_counter() - start)
    return statistics.median(first), statistics.median(later)


def uniform_rate(repeat: int) -> float:
    """GB/s of a single-threaded float32 uniform_ fill from a generator."""
    t = torch.empty(32 * 2**20)
    g = torch.Generator().manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds = median_time(lambda: t.uniform_(generator=g), repeat)
    finally:
        torch.set_num_threads(previous)
    return t.numel() * 4 / seconds / 1e9


def peak_rss() -> float:
    """This process's peak resident memory in MiB: VmHWM, which starts anew with the
    process image (ru_maxrss would carry the parent's peak over a fork)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(n: int, width: int) -> dict[str, float]:
    """In this fresh process: meta -> to_empty -> reset of a Stack; MiB of peak RSS growth,
    of the parameters and of the largest parameter."""
    with torch.device("meta"):
        m = Stack(n, width)
    base = peak_rss()
    m.to_empty(device="cpu")
    m.reset_parameters()
    peak = peak_rss()
    sizes = [p.numel() * p.element_size() / 2**20 for p in m.parameters()]
    return {"growth": peak - base, "params": sum(sizes), "largest": max(sizes)}


# -- the report ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="small models, in seconds (ratios not comparable)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="runs per median (7)")
    parser.add_argument("--memory", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory:
        print(json.dumps(peak_memory(*args.memory)))
        return 0
    quick, repeat = args.quick, args.repeat
    big = (2, 1024) if quick else (16, 8192)  # 1.07B parameters
    gpt_shape = (512, 64, 64, 2) if quick else (50257, 1024, 768, 12)

    print(f"seeded-init benchmark: torch {torch.__version__}, Python {platform.python_version()}")
    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"single-core uniform_ fill: {uniform_rate(repeat):.2f} GB/s\n")

    tiny = 1000 if quick else 10000
    gpt = "GPT (2 small blocks)" if quick else "GPT-2 small"
    if quick:
        print(
            f"--quick: a {gpt}, {tiny:,} tiny layers and {big[0]} x Linear({big[1]}, {big[1]}) "
            f"(ResNet-50 keeps its size); at these sizes fixed costs dominate, and the ratios "
            f"are not comparable with the full run's\n"
        )
    rows = [
        compare(gpt, lambda: GPT(*gpt_shape), gpt_loop, repeat),
        compare("ResNet-50", ResNet50, resnet_loop, repeat),
        compare(f"{tiny:,} tiny Linear(4, 4)", lambda: Stack(tiny, 4), stack_loop, repeat),
        compare(f"{big[0]} x Linear({big[1]}, {big[1]})", lambda: Stack(*big), stack_loop, repeat),
    ]
    gc.collect()

    head = f"{'model':26} {'params':>13} {'(a) torch':>10} {'(b) loop':>9} {'(c) 1 thr':>10}"
    print(head + f" {'(d) all':>8}  {'c/b':>5} {'a/d':>5} {'c/d':>5}")
    for r in rows:
        print(
            f"{r.model:26} {r.params:>13,} {r.a:>9.3f}s {r.b:>8.3f}s {r.c:>9.3f}s {r.d:>7.3f}s"
            f"  {r.c / r.b:>5.2f} {r.a / r.d:>5.2f} {r.c / r.d:>5.2f}"
        )

    first, later = first_and_later(tiny, repeat)
    print(
        f"\n{tiny:,} tiny Linear(4, 4), per layer, 1 thread: first reset (builds the plan) "
        f"{first * 1e6 / tiny:.1f} us, later resets of the unchanged model "
        f"{later * 1e6 / tiny:.1f} us"
    )
    plain_tiny, ours_tiny = medians(
        [lambda: nn.ModuleList(nn.Linear(4, 4) for _ in range(tiny)), lambda: Stack(tiny, 4)],
        repeat,
    )
    print(
        f"construction, {tiny:,} tiny Linear(4, 4) declared vs plain nn.ModuleList: "
        f"{ours_tiny:.3f}s vs {plain_tiny:.3f}s = {ours_tiny / plain_tiny:.2f}x"
    )

    class PlainBlock(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    class DefaultBlock(SeededModule):
        """The same block, every layer declared "default": the same fills as PlainBlock."""

        def __init__(self, d: int) -> None:
            super().__init__()
            self.d = d
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)

        @seeded_init(scheme="default")
        def qkv(self) -> nn.Linear:
            return nn.Linear(self.d, 3 * self.d)

        @seeded_init(scheme="default")
        def proj(self) -> nn.Linear:
            return nn.Linear(self.d, self.d)

        @seeded_init(scheme="default")
        def fc(self) -> nn.Linear:
            return nn.Linear(self.d, 4 * self.d)

        @seeded_init(scheme="default")
        def out(self) -> nn.Linear:
            return nn.Linear(4 * self.d, self.d)

    d, n_layer = gpt_shape[2], gpt_shape[3]

    class Declared(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(DefaultBlock(d) for _ in range(n_layer))

    def deferred() -> None:
        with torch.device("meta"):
            m = GPT(*gpt_shape)
        m.to_empty(device="cpu")
        m.reset_parameters()

    plain, ours, eager, meta = medians(
        [
            lambda: nn.ModuleList(PlainBlock(d) for _ in range(n_layer)),
            Declared,
            lambda: GPT(*gpt_shape),
            deferred,
        ],
        repeat,
    )
    print(f"\nconstruction, declared vs plain nn.Module ({n_layer} blocks): {ours:.3f}s vs "
          f"{plain:.3f}s = {ours / plain:.2f}x")  # fmt: skip
    print(f"{gpt}, meta -> to_empty -> reset vs eager: {meta:.3f}s vs {eager:.3f}s = "
          f"{meta / eager:.2f}x")  # fmt: skip

    probe = subprocess.run(
        [sys.executable, __file__, "--memory", str(big[0]), str(big[1])],
        capture_output=True,
        text=True,
        check=True,
    )
    mem = json.loads(probe.stdout)
    bound = (mem["params"] + mem["largest"]) * 1.1
    verdict = "met" if mem["growth"] <= bound else "missed"
    if quick:  # a few MiB of allocator overhead outweigh parameters this small
        verdict = "no verdict at --quick size"
    print(
        f"{big[0]} x Linear({big[1]}, {big[1]}), peak RSS growth of meta -> to_empty -> reset: "
        f"{mem['growth']:.0f} MiB; parameters {mem['params']:.0f} MiB, largest "
        f"{mem['largest']:.0f} MiB (target <= {bound:.0f} MiB: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
