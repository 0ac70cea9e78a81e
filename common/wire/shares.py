"""The fair-share settings, projects, weights, guarantees and limits (common/shares.py) to
and from their messages."""

from __future__ import annotations

from typing import Any

from minga.common.shares import (
    OPTIONAL_SETTINGS,
    Guarantee,
    InstitutionLimits,
    NodeWeight,
    PartialSettings,
    ProjectShare,
    ShareSettings,
)
from minga.v1 import admin_pb2

# Policy fields 1-6 have no presence: zero or empty means "not given" (ShareSettings' names).
_PLAIN_SETTINGS = (
    "policy",
    "half_life_seconds",
    "base_grant",
    "model_weights",
    "preemption_grace_seconds",
    "age_weight",
)
_WIRE_SETTINGS = frozenset(_PLAIN_SETTINGS + OPTIONAL_SETTINGS)  # every setting a Policy carries


def share_settings_to_pb(s: ShareSettings) -> admin_pb2.Policy:
    """Every setting, as GetPolicy and SetPolicy answer."""
    return partial_settings_to_pb(PartialSettings(s, _WIRE_SETTINGS))


def partial_settings_to_pb(p: PartialSettings) -> admin_pb2.Policy:
    """The given settings alone: the others left at zero (fields 1-6) or unset (the optional ones)."""
    values: dict[str, Any] = {name: getattr(p.settings, name) for name in _WIRE_SETTINGS & p.given}
    weights = values.pop("model_weights", ())
    return admin_pb2.Policy(
        share_policy=values.pop("policy", ""),
        model_weights=[admin_pb2.ModelWeight(model=m, weight=w) for m, w in weights],
        **values,
    )


def partial_settings_from_pb(pb: admin_pb2.Policy) -> PartialSettings:
    """The settings a Policy gives: fields 1-6 when not zero or empty, the optional ones
    when set (so `false` and `0` can be given too). Those it does not give read as zero
    (fields 1-6) or as ShareSettings' defaults (the optional ones)."""
    update = ShareSettings(
        policy=pb.share_policy,
        half_life_seconds=pb.half_life_seconds,
        base_grant=pb.base_grant,
        model_weights=tuple((w.model, w.weight) for w in pb.model_weights),
        preemption_grace_seconds=pb.preemption_grace_seconds,
        age_weight=pb.age_weight,
        **{name: getattr(pb, name) for name in OPTIONAL_SETTINGS if pb.HasField(name)},
    )
    given = {name for name in _PLAIN_SETTINGS if getattr(update, name)}
    given |= {name for name in OPTIONAL_SETTINGS if pb.HasField(name)}
    return PartialSettings(update, frozenset(given))


def project_to_pb(p: ProjectShare) -> admin_pb2.Project:
    return admin_pb2.Project(id=p.id, institution=p.institution, name=p.name, weight=p.weight)


def project_from_pb(pb: admin_pb2.Project) -> ProjectShare:
    return ProjectShare(id=pb.id, institution=pb.institution, weight=pb.weight)


def node_weight_to_pb(w: NodeWeight) -> admin_pb2.SetWeightResponse:
    return admin_pb2.SetWeightResponse(kind=w.kind, id=w.id, weight=w.weight)


def node_weight_from_pb(pb: admin_pb2.SetWeightResponse) -> NodeWeight:
    return NodeWeight(kind=pb.kind, id=pb.id, weight=pb.weight)


def guarantee_to_pb(g: Guarantee) -> admin_pb2.SetGuaranteeResponse:
    return admin_pb2.SetGuaranteeResponse(institution=g.institution, gpu_model=g.gpu_model, gpus=g.gpus)


def guarantee_from_pb(pb: admin_pb2.SetGuaranteeResponse) -> Guarantee:
    return Guarantee(institution=pb.institution, gpu_model=pb.gpu_model, gpus=pb.gpus)


def limit_to_pb(gpus: int | None) -> int:
    """A borrowing or lending limit as SetLimits carries it: -1 is unlimited."""
    return -1 if gpus is None else gpus


def _limit_from_pb(gpus: int) -> int | None:
    return None if gpus < 0 else gpus


def limits_to_pb(lim: InstitutionLimits) -> admin_pb2.SetLimitsResponse:
    return admin_pb2.SetLimitsResponse(
        institution=lim.institution,
        borrowing_limit=limit_to_pb(lim.borrowing_limit),
        lending_limit=limit_to_pb(lim.lending_limit),
    )


def limits_from_pb(pb: admin_pb2.SetLimitsResponse) -> InstitutionLimits:
    return InstitutionLimits(
        institution=pb.institution,
        borrowing_limit=_limit_from_pb(pb.borrowing_limit),
        lending_limit=_limit_from_pb(pb.lending_limit),
    )
