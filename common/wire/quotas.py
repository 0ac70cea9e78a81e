"""The quota view (common/quotas.py) to and from `ShowQuotasResponse`. Its rows, tree
nodes and institutions carry the same fields as their messages, name for name."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

from minga.common.quotas import Floor, InstitutionQuota, QuotaRow, QuotaView, TreeNode
from minga.v1 import admin_pb2

_V = TypeVar("_V", QuotaRow, TreeNode, InstitutionQuota)


def _from(cls: type[_V], pb: Any) -> _V:
    return cls(**{f.name: getattr(pb, f.name) for f in fields(cls)})


def quota_view_to_pb(view: QuotaView) -> admin_pb2.ShowQuotasResponse:
    return admin_pb2.ShowQuotasResponse(
        rows=[admin_pb2.QuotaRow(**asdict(r)) for r in view.rows],
        tree=[admin_pb2.TreeNode(**asdict(n)) for n in view.tree],
        institutions=[admin_pb2.InstitutionQuota(**asdict(i)) for i in view.institutions],
        capacity=view.capacity,
        share_policy=view.floor.share_policy,
        base_grant=view.floor.base_grant,
        base_grant_fraction=view.floor.base_grant_fraction,
    )


def quota_view_from_pb(pb: admin_pb2.ShowQuotasResponse) -> QuotaView:
    return QuotaView(
        rows=[_from(QuotaRow, r) for r in pb.rows],
        institutions=[_from(InstitutionQuota, i) for i in pb.institutions],
        tree=[_from(TreeNode, n) for n in pb.tree],
        capacity=pb.capacity,
        floor=Floor(share_policy=pb.share_policy, base_grant=pb.base_grant, base_grant_fraction=pb.base_grant_fraction),
    )
