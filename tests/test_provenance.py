"""Provenance: the init plan and initial fingerprint travel with a checkpoint, loadable with
``torch.load(weights_only=True)``, and re-initialize or verify a model later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from seeded_init import (
    InitRules,
    Normal,
    PlanError,
    Provenance,
    ProvenanceError,
    SeededModule,
    fingerprint,
    seeded_init,
)

from .helpers import assert_same, snapshot


class Net(SeededModule):
    def __init__(self, d: int = 16) -> None:
        super().__init__(seed=3)
        self.d = d
        self.norm = nn.LayerNorm(d)

    @seeded_init(scheme="kaiming_normal", nonlinearity="relu")
    def fc(self) -> nn.Linear:
        return nn.Linear(self.d, 2 * self.d)


def train_a_little(model: nn.Module) -> None:
    """What an optimizer step does to the weights: a small change to each."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g), alpha=1e-3)


def save_and_load(tmp_path: Path, model: nn.Module, prov: Provenance) -> dict[str, object]:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "seeded_init": prov.to_json()}, path)
    loaded: dict[str, object] = torch.load(path, weights_only=True)
    return loaded


def test_a_seeded_module_checkpoint_carries_its_provenance(tmp_path: Path) -> None:
    model = Net()
    initial = snapshot(model)
    prov = Provenance.of(model)
    prov.verify(model)
    train_a_little(model)
    ckpt = save_and_load(tmp_path, model, prov)
    text = ckpt["seeded_init"]
    assert isinstance(text, str) and len(text) < 10_000  # a small side entry
    back = Provenance.from_json(text)
    assert back == prov
    assert back.digest == fingerprint(Net()).digest  # a fresh construction: the same init
    assert back.plan == Net().init_plan()
    with pytest.raises(ProvenanceError, match=r"'norm.weight'.*differ"):
        back.verify(model)
    back.reinit(model)
    back.verify(model)
    assert_same(snapshot(model), initial)


def test_a_ruled_model_checkpoint_carries_its_provenance(tmp_path: Path) -> None:
    rules = InitRules({nn.Linear: Normal(std=0.05)}, seed=9)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    rules.reset_parameters(model)
    initial = snapshot(model)
    prov = Provenance.of(model, rules)
    train_a_little(model)
    back = Provenance.from_json(str(save_and_load(tmp_path, model, prov)["seeded_init"]))
    with pytest.raises(ProvenanceError, match="not the recorded initial ones"):
        back.verify(model)
    back.reinit(model, rules)
    assert_same(snapshot(model), initial)


def test_reinit_refuses_another_architecture_and_changes_nothing() -> None:
    prov = Provenance.of(Net(16))
    other = Net(8)
    train_a_little(Net())  # global RNG use elsewhere must not matter
    before = snapshot(other)
    with pytest.raises(ProvenanceError, match=r"init plan is not the recorded one.*fc.weight"):
        prov.reinit(other)
    assert_same(snapshot(other), before)


def test_reinit_puts_the_values_back_when_the_drawn_ones_differ() -> None:
    model = Net()
    prov = Provenance.of(model)
    data = json.loads(prov.to_json())
    data["digest"] = "0" * 64  # as if another torch had drawn them
    data["tensors"]["fc.weight"] = "0" * 64
    data["torch_version"] = "1.0"
    wrong = Provenance.from_json(json.dumps(data))
    train_a_little(model)
    before = snapshot(model)
    with pytest.raises(ProvenanceError, match=r"'fc.weight'.*another seed=.*torch 1\.0.*put back"):
        wrong.reinit(model)
    assert_same(snapshot(model), before)


def test_a_plan_without_weights_from_the_meta_device() -> None:
    with torch.device("meta"):
        model = Net()
    prov = Provenance.of(model, weights=False)
    assert prov.digest is None
    assert Provenance.from_json(prov.to_json()) == prov
    with pytest.raises(ProvenanceError, match="without weights"):
        prov.verify(model)
    with pytest.raises(ValueError, match="meta device"):
        Provenance.of(model)
    model.to_empty(device="cpu")
    prov.reinit(model)  # no digest to compare: the plan alone is checked
    assert_same(snapshot(model), snapshot(Net()))


def test_provenance_needs_the_rules_of_a_plain_model_and_no_rules_for_a_seeded_one() -> None:
    with pytest.raises(ProvenanceError, match="pass the InitRules"):
        Provenance.of(nn.Linear(2, 2))
    with pytest.raises(ProvenanceError, match="leave rules out"):
        Provenance.of(Net(), InitRules())
    with pytest.raises(PlanError, match="matches no layer"):
        Provenance.of(nn.Linear(2, 2), InitRules({nn.Conv2d: "zeros"}))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "other", "format"),
        ("extra", 1, "keys"),
        ("digest", "abc", "digest"),
        ("tensors", {"fc.weight": 3}, "tensors"),
        ("torch_version", 2, "torch_version"),
        ("plan", {"format": "seeded-init/plan/v1", "root_seed": -1, "entries": []}, "root_seed"),
    ],
)
def test_from_json_refuses_what_to_json_did_not_write(
    key: str, value: object, message: str
) -> None:
    data = json.loads(Provenance.of(Net()).to_json())
    data[key] = value
    with pytest.raises(ValueError, match=message):
        Provenance.from_json(json.dumps(data))
    for text in ("", "[]", "{"):
        with pytest.raises(ValueError, match="not a provenance"):
            Provenance.from_json(text)


def test_wrong_argument_types_are_type_errors() -> None:
    prov = Provenance.of(Net())
    with pytest.raises(TypeError, match=r"takes an nn\.Module, not str"):
        prov.verify("model")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="rules= takes the InitRules"):
        Provenance.of(nn.Linear(2, 2), {"0": "normal"})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="weights"):
        Provenance.of(Net(), weights=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_a_plan_holding_a_tensor_twice_is_refused() -> None:
    data = json.loads(Provenance.of(Net()).to_json())
    data["plan"]["entries"].append(data["plan"]["entries"][0])
    with pytest.raises(ValueError, match=r"holds 'norm\.weight' twice"):
        Provenance.from_json(json.dumps(data))
