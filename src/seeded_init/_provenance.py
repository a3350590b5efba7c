"""Provenance: how a model's initial weights were made, to travel with its checkpoints.

``Provenance.of(model)`` right after init holds the model's init plan and the fingerprint of
its weights; ``to_json()`` is a small string, which ``torch.save`` stores beside a state_dict
and ``torch.load(weights_only=True)`` reads back. Later, ``verify(model)`` proves a model holds
those initial weights, and ``reinit(model)`` draws them again (or says why it cannot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from ._errors import ProvenanceError
from ._fingerprint import fingerprint
from ._records import InitPlan, json_object

if TYPE_CHECKING:
    from ._rules import InitRules

__all__ = ["Provenance", "without_devices"]

_FORMAT = "seeded-init/provenance/v1"


@dataclass(frozen=True)
class Provenance:
    """A model's init plan and the fingerprint of the weights it gave.

    Attributes:
        plan: every tensor's rule and seed (:class:`InitPlan`).
        digest: the model digest of the initial weights (:func:`fingerprint`); None for a
            plan made without weights (on the meta device).
        tensors: each tensor's digest by ``state_dict()`` name (empty when ``digest`` is None).
        torch_version: the torch that drew them (``torch.__version__``).
    """

    plan: InitPlan
    digest: str | None
    tensors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    torch_version: str = ""

    @classmethod
    def of(
        cls,
        model: nn.Module,
        rules: InitRules | None = None,
        *,
        seed: int | None = None,
        weights: bool = True,
    ) -> Provenance:
        """The provenance of ``model`` as it is now: take it right after init.

        Args:
            model: a SeededModule, or any module that ``rules`` initialize.
            rules: the :class:`InitRules` that initialized a model that is not a SeededModule.
            seed: the root seed of the reset that initialized it, if not the model's (or the
                rules') own: ``reset_parameters(seed=...)``.
            weights: False for a plan alone (a model on the meta device has no weights).

        Raises:
            PlanError: the plan cannot be made (see ``init_plan``).
            ValueError: ``weights`` and a tensor on the meta device.
        """
        if not isinstance(weights, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"Provenance.of(weights=...) takes True or False, not {weights!r}")
        plan = _plan(model, rules, seed)
        if not weights:
            return cls(plan, None, MappingProxyType({}), torch.__version__)
        fp = fingerprint(model)
        return cls(plan, fp.digest, fp.tensors, torch.__version__)

    def verify(self, model: nn.Module) -> None:
        """Check that ``model`` holds exactly the initial weights this provenance records.

        Raises:
            ProvenanceError: it does not (naming the tensors that differ), or no weights were
                recorded.
        """
        _module_only(model, "Provenance.verify")
        if self.digest is None:
            raise ProvenanceError(
                "Provenance.verify: this provenance holds a plan without weights (taken with "
                "weights=False, or on the meta device); take it after the reset with "
                "Provenance.of(model)"
            )
        fp = fingerprint(model)
        if fp.digest == self.digest:
            return
        differ = [n for n, d in fp.tensors.items() if self.tensors.get(n) != d]
        differ += [n for n in self.tensors if n not in fp.tensors]
        more = f" (and {len(differ) - 3} more)" if len(differ) > 3 else ""
        raise ProvenanceError(
            f"Provenance.verify: the model's weights are not the recorded initial ones: "
            f"{', '.join(repr(n) for n in differ[:3])}{more} differ (model digest "
            f"{fp.digest[:16]}..., recorded {self.digest[:16]}...)"
        )

    def reinit(
        self, model: nn.Module, rules: InitRules | None = None, *, threads: int | None = None
    ) -> None:
        """Draw the recorded initial weights into ``model`` again, and verify them.

        The model's plan (with the recorded root seed) must equal the recorded one, up to
        devices; then it is reset and its fingerprint checked. On any error the model keeps
        the values it had.

        Raises:
            ProvenanceError: the model's plan differs from the recorded one (an architecture,
                rule or dtype change: the message lists it), or the values drawn differ from
                the recorded ones (another torch may draw otherwise).
        """
        plan = _plan(model, rules, self.plan.root_seed)
        change = without_devices(self.plan).diff(without_devices(plan))
        if change:
            lines = str(change).splitlines()
            more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
            raise ProvenanceError(
                f"Provenance.reinit: the model's init plan is not the recorded one: "
                f"{' | '.join(lines[:5])}{more}; nothing was changed"
            )
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _reset(model, rules, self.plan.root_seed, threads)
        if self.digest is None:
            return
        try:
            self.verify(model)
        except ProvenanceError as exc:
            model.load_state_dict(saved)
            raise ProvenanceError(
                f"Provenance.reinit: the plan matches but the values drawn do not: {exc}. "
                f"Either the recorded weights were not this plan's (taken after training, or "
                f"after a reset with another seed=: pass it to Provenance.of(..., seed=)), or "
                f"torch {torch.__version__} draws otherwise than the recorded torch "
                f"{self.torch_version}; the model's values were put back"
            ) from exc

    def to_json(self) -> str:
        """A small JSON text: the plan, the digests and the torch version."""
        plan: object = json.loads(self.plan.to_json())
        return json.dumps(
            {
                "format": _FORMAT,
                "plan": plan,
                "digest": self.digest,
                "tensors": dict(self.tensors),
                "torch_version": self.torch_version,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """The provenance ``to_json`` wrote.

        Raises:
            ValueError: ``text`` is not such a provenance.
        """
        try:
            keys = ("digest", "format", "plan", "tensors", "torch_version")
            raw = json_object(text, _FORMAT, keys)
            digest, tensors, version = raw["digest"], raw["tensors"], raw["torch_version"]
            if digest is not None and not _is_digest(digest):
                raise ValueError(f"digest {digest!r} is not a SHA-256 hex digest or null")
            if not isinstance(tensors, dict) or not all(
                isinstance(k, str) and _is_digest(v)
                for k, v in cast("dict[object, object]", tensors).items()
            ):
                raise ValueError("tensors are not names with SHA-256 hex digests")
            if not isinstance(version, str):
                raise ValueError(f"torch_version {version!r} is not a string")
            plan = InitPlan.from_json(json.dumps(raw["plan"]))
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(
                f"Provenance.from_json: not a provenance written by to_json: {exc}"
            ) from exc
        named = cast("dict[str, str]", tensors)
        return cls(plan, cast("str | None", digest), MappingProxyType(dict(named)), version)


def _is_digest(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def without_devices(plan: InitPlan) -> InitPlan:
    """The plan with every device left out: the default draw gives the same values on all."""
    return InitPlan(plan.root_seed, tuple(replace(e, device="") for e in plan.entries))


def _module_only(model: object, where: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where} takes an nn.Module, not {type(model).__name__}")


def _plan(model: nn.Module, rules: InitRules | None, seed: int | None) -> InitPlan:
    from ._module import SeededModule
    from ._rules import InitRules

    _module_only(model, "Provenance")
    if rules is not None and not isinstance(rules, InitRules):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(
            f"Provenance: rules= takes the InitRules that initialized the model, not "
            f"{type(rules).__name__}; write InitRules({{...}})"
        )

    if isinstance(model, SeededModule):
        if rules is not None:
            raise ProvenanceError(
                f"{type(model).__qualname__} is a SeededModule, initialized by its own "
                f"declarations; leave rules out"
            )
        return model.init_plan(seed)
    if rules is None:
        raise ProvenanceError(
            f"{type(model).__name__} is not a SeededModule; pass the InitRules that "
            f"initialize it (Provenance.of(model, rules))"
        )
    return rules.init_plan(model, seed)


def _reset(model: nn.Module, rules: InitRules | None, seed: int, threads: int | None) -> None:
    from ._module import SeededModule

    if isinstance(model, SeededModule):
        model.reset_parameters(seed, threads=threads)
    elif rules is not None:
        rules.reset_parameters(model, seed, threads=threads)
