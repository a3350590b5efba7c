"""The init plan's records: keywords, fans, devices and fallbacks, checked against torch's own
signatures and fan arithmetic; computed on the meta device; a JSON round trip."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import cast

import pytest
import torch
from torch import nn

from seeded_init import InitPlan, ParamInit, SeededModule, seeded_init

from .helpers import gpt_example


class Own(nn.Module):
    """A layer type seeded-init does not know, with a reset_parameters() of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(3, 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w)


class Net(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.own = Own()

    @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
    def fc1(self) -> nn.Linear:
        return nn.Linear(8, 16)

    @seeded_init(scheme="default")
    def fc2(self) -> nn.Linear:
        return nn.Linear(16, 8)

    @seeded_init(scheme="normal", std=0.02)
    def conv(self) -> nn.Conv2d:
        return nn.Conv2d(3, 4, 5)


def torch_defaults(fn: object) -> dict[str, object]:
    """The keyword defaults of a torch.nn.init function, from its signature."""
    assert callable(fn)
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.default is not inspect.Parameter.empty and p.name != "generator"
    }


def test_keywords_are_torch_nn_inits() -> None:
    """A scheme's keywords are those of its torch.nn.init function: the declared ones over
    torch's defaults; a default rule lists what PyTorch's layer passes."""
    plan = Net().init_plan()
    assert dict(plan["fc1.weight"].keywords) == {
        **torch_defaults(nn.init.kaiming_normal_),
        "nonlinearity": "relu",
    }
    assert dict(plan["conv.weight"].keywords) == {
        **torch_defaults(nn.init.normal_),
        "std": 0.02,
    }
    assert dict(plan["fc2.weight"].keywords) == {
        "a": math.sqrt(5),  # nn.Linear.reset_parameters
        "mode": "fan_in",
        "nonlinearity": "leaky_relu",
    }
    bound = 1 / math.sqrt(16)
    assert dict(plan["fc2.bias"].keywords) == {"a": -bound, "b": bound}
    assert dict(plan["norm.weight"].keywords) == {} == dict(plan["norm.bias"].keywords)
    assert plan["norm.weight"].rule == "ones"


def test_fans_are_torchs_and_fallbacks_are_marked() -> None:
    plan = Net().init_plan()
    for e in plan:
        if len(e.shape) >= 2:
            want = nn.init._calculate_fan_in_and_fan_out(torch.empty(e.shape))  # pyright: ignore[reportPrivateUsage]
            assert (e.fan_in, e.fan_out) == want, e.path
        else:
            assert e.fan_in is None and e.fan_out is None, e.path
        assert e.device == "cpu"
        assert e.fallback == (e.path == "own.w"), e.path
    assert plan["own.w"].rule == "Own.reset_parameters"
    assert dict(plan["own.w"].keywords) == {}


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="Linux only")
def test_the_plan_of_a_meta_model_allocates_nothing() -> None:
    """GPT-2 small (about 500 MB of float32) on the meta device: its plan, with fans from its
    shapes, costs no memory to speak of."""
    gpt = gpt_example()
    before = _rss_mib()
    with torch.device("meta"):
        model = gpt.GPT(gpt.GPT2_SMALL)
    plan = model.init_plan()
    assert _rss_mib() - before < 200
    assert {e.device for e in plan} == {"meta"}
    assert sum(math.prod(e.shape) for e in plan if e.tied_to is None) > 100_000_000
    qkv = next(e for e in plan if len(e.shape) == 2 and e.shape[0] == 3 * e.shape[1])
    assert (qkv.fan_in, qkv.fan_out) == (qkv.shape[1], qkv.shape[0])


def test_json_round_trip() -> None:
    gpt = gpt_example()
    for plan in (Net().init_plan(), gpt.GPT(gpt.TINY).init_plan()):
        text = plan.to_json()
        data = json.loads(text)
        assert data["format"] == "seeded-init/plan/v1" and data["root_seed"] == plan.root_seed
        back = InitPlan.from_json(text)
        assert back == plan
        assert str(back) == str(plan)
        assert all(isinstance(e, ParamInit) for e in back)
    tied = [e for e in gpt.GPT(gpt.TINY).init_plan() if e.tied_to is not None]
    assert tied and InitPlan.from_json(gpt.GPT(gpt.TINY).init_plan().to_json())[tied[0].path]


def _bad(case: str) -> tuple[str, str]:
    """A text to_json did not write, and what from_json says of it."""
    data: dict[str, object] = json.loads(Net().init_plan().to_json())
    entries = cast("list[dict[str, object]]", data["entries"])
    first = entries[0]
    cases = {
        "not json": ("not json", "not an init plan"),
        "not an object": (json.dumps([1]), "not a JSON object"),
        "format": (json.dumps({**data, "format": "other/v9"}), "its format is not"),
        "root seed": (json.dumps({**data, "root_seed": "0"}), "root_seed is '0'"),
        "dtype": (
            json.dumps({**data, "entries": [{**first, "dtype": "float33"}]}),
            "dtype 'float33' is not a torch dtype",
        ),
        "fields": (json.dumps({**data, "entries": [{"path": "x"}]}), "a record has fields"),
        "entries": (json.dumps({**data, "entries": {"a": 1}}), "entries are not a list"),
        "extra key": (json.dumps({**data, "note": 1}), "it has keys"),
        "deep": ("[" * 100_000 + "]" * 100_000, "not an init plan"),
        "dangling tie": (
            json.dumps({**data, "entries": [{**first, "tied_to": "nowhere"}]}),
            "is tied to 'nowhere', which the plan does not hold",
        ),
        "surrogate": (
            json.dumps({**data, "entries": [{**first, "path": "\ud800"}]}),
            "path is not valid Unicode",
        ),
    }
    for name, value, message in [
        ("seed", "3", "seed is '3', not a count"),
        ("seed", 2**64, "is not below 2\\*\\*64"),
        ("shape", [2.0, 3], "shape is 2.0, not a count"),
        ("shape", [-1], "shape is -1, not a count"),
        ("fallback", 0, "fallback is 0, not true or false"),
        ("keywords", {"std": [1]}, "keywords .* are not names with numbers"),
        ("device", "gpu:x", "device 'gpu:x' is not a torch device"),
        ("dtype", "Tensor", "dtype 'Tensor' is not a torch dtype"),
        ("fan_in", True, "fan_in is True, not a count"),
        ("tied_to", 7, "tied_to is 7, not a string"),
        ("seed_source", "chosen", "seed_source is 'chosen'"),
    ]:
        bad = json.dumps({**data, "entries": [{**first, name: value}]})
        cases[f"{name}={value!r}"] = (bad, message)
    return cases[case]


CASES = [
    "not json",
    "not an object",
    "format",
    "root seed",
    "dtype",
    "fields",
    "entries",
    "extra key",
    "deep",
    "dangling tie",
    "surrogate",
    "seed='3'",
    f"seed={2**64!r}",
    "shape=[2.0, 3]",
    "shape=[-1]",
    "fallback=0",
    "keywords={'std': [1]}",
    "device='gpu:x'",
    "dtype='Tensor'",
    "fan_in=True",
    "tied_to=7",
    "seed_source='chosen'",
]


@pytest.mark.parametrize("case", CASES)
def test_from_json_refuses_what_to_json_did_not_write(case: str) -> None:
    text, message = _bad(case)
    with pytest.raises(ValueError, match=message):
        InitPlan.from_json(text)


def test_diff_of_an_architecture_change() -> None:
    """Adding a layer, rescaling a declaration and a new root seed: the diff names each."""

    class Before(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        @seeded_init(scheme="normal", std=0.02, seed=3)
        def head(self) -> nn.Linear:
            return nn.Linear(4, 2)

    class After(SeededModule):
        def __init__(self) -> None:
            super().__init__(seed=1)
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        @seeded_init(scheme="normal", std=0.01, seed=3)
        def head(self) -> nn.Linear:
            return nn.Linear(4, 2)

    before, after = Before().init_plan(), After().init_plan()
    d = before.diff(after)
    assert d and not before.diff(InitPlan.from_json(before.to_json()))
    assert str(before.diff(before)) == "no change"
    assert [e.path for e in d.added] == ["b.weight", "b.bias"] and d.removed == ()
    changed = {a.path: (a, b) for a, b in d.changed}
    # a's seed is derived from the root seed, which changed; head's is explicit, but its
    # declaring class is another
    assert set(changed) == {"a.weight", "a.bias", "head.weight", "head.bias"}
    old, new = changed["head.weight"]
    assert (old.keywords["std"], new.keywords["std"]) == (0.02, 0.01)
    assert old.seed == new.seed == 3
    text = str(d).splitlines()
    assert text[0] == "root seed 0 -> 1"
    assert "+ b.weight  4x4 kaiming_uniform(a=sqrt(5))" in text[1]
    line = next(x for x in text if x.startswith("~ head.weight  "))
    assert "rule normal(std=0.02) -> normal(std=0.01)" in line
    assert "<locals>.Before.head -> " in line and line.count("declared_by") == 1
    assert "keywords {'mean': 0.0, 'std': 0.02} -> {'mean': 0.0, 'std': 0.01}" in line
    assert after.diff(before).removed == d.added
