"""The fair-share settings and projects (common/shares.py) to and from their messages."""

from __future__ import annotations

from minga.common.shares import ProjectShare, ShareSettings
from minga.v1 import admin_pb2

# Policy fields declared `optional` in admin.proto (same names in ShareSettings): given when set.
_PRESENCE_FIELDS = (
    "fair_share_preemption",
    "preemption_threshold",
    "preemption_cap",
    "preemption_notice_seconds",
    "base_grant_fraction",
    "reservation_min_age_seconds",
)


def share_settings_to_pb(s: ShareSettings) -> admin_pb2.Policy:
    return admin_pb2.Policy(
        share_policy=s.policy,
        half_life_seconds=s.half_life_seconds,
        base_grant=s.base_grant,
        model_weights=[admin_pb2.ModelWeight(model=m, weight=w) for m, w in s.model_weights],
        preemption_grace_seconds=s.preemption_grace_seconds,
        age_weight=s.age_weight,
        **{name: getattr(s, name) for name in _PRESENCE_FIELDS},
    )


def share_update_from_pb(pb: admin_pb2.Policy) -> tuple[ShareSettings, set[str]]:
    """The settings a SetPolicy gives, and the names of those it gives. Fields 1-6 have no
    presence: zero or empty means "keep". The optional ones are given when set, so `false`
    and `0` can be set too."""
    given = {
        name
        for name, present in (
            ("policy", pb.share_policy),
            ("half_life_seconds", pb.half_life_seconds),
            ("base_grant", pb.base_grant),
            ("model_weights", pb.model_weights),
            ("preemption_grace_seconds", pb.preemption_grace_seconds),
            ("age_weight", pb.age_weight),
        )
        if present
    }
    given |= {name for name in _PRESENCE_FIELDS if pb.HasField(name)}
    update = ShareSettings(
        policy=pb.share_policy,
        half_life_seconds=pb.half_life_seconds,
        base_grant=pb.base_grant,
        model_weights=tuple((w.model, w.weight) for w in pb.model_weights),
        preemption_grace_seconds=pb.preemption_grace_seconds,
        age_weight=pb.age_weight,
        **{name: getattr(pb, name) for name in _PRESENCE_FIELDS if pb.HasField(name)},
    )
    return update, given


def project_to_pb(p: ProjectShare) -> admin_pb2.Project:
    return admin_pb2.Project(id=p.id, institution=p.institution, name=p.id.split("/", 1)[1], weight=p.weight)
