"""Sites and their inventories: domain values to and from their messages."""

from __future__ import annotations

from minga.common.domain import GpuPool, Inventory, Site
from minga.common.site_view import SiteView
from minga.common.wire.enums import site_state_from_pb, site_state_to_pb
from minga.v1 import admin_pb2, common_pb2


def inventory_from_pb(pb: common_pb2.Inventory) -> Inventory:
    return Inventory(
        gpus=tuple(
            GpuPool(model=p.model, memory_mb=p.memory_mb, total=p.total, free=p.free, largest_node=p.largest_node)
            for p in pb.gpus
        ),
        cpus=pb.cpus,
        memory_mb=pb.memory_mb,
        nodes=pb.nodes,
    )


def inventory_to_pb(inv: Inventory) -> common_pb2.Inventory:
    return common_pb2.Inventory(
        gpus=[
            common_pb2.GpuPool(
                model=p.model, memory_mb=p.memory_mb, total=p.total, free=p.free, largest_node=p.largest_node
            )
            for p in inv.gpus
        ],
        cpus=inv.cpus,
        memory_mb=inv.memory_mb,
        nodes=inv.nodes,
    )


def site_view_to_pb(view: SiteView) -> admin_pb2.Site:
    site = view.site
    return admin_pb2.Site(
        name=site.name,
        institution=site.institution,
        country=site.country,
        state=site_state_to_pb(site.state),
        connected=site.connected,
        inventory=inventory_to_pb(site.inventory),
        last_seen=site.last_seen,
        gpus_in_use=dict(view.gpus_in_use),
        labels=dict(site.labels),
        state_reason=site.state_reason,
    )


def site_view_from_pb(pb: admin_pb2.Site) -> SiteView:
    """Labels and GPUs in use sorted by key, as the broker keeps them. A site's own health
    and whether its agent ever reported are not on the wire (its effective state and the
    reason for it tell the admin): they read as `Site`'s defaults."""
    site = Site(
        name=pb.name,
        institution=pb.institution,
        country=pb.country,
        state=site_state_from_pb(pb.state),
        connected=pb.connected,
        inventory=inventory_from_pb(pb.inventory),
        last_seen=pb.last_seen,
        labels=tuple(sorted(pb.labels.items())),
        state_reason=pb.state_reason,
    )
    return SiteView(site, tuple(sorted(pb.gpus_in_use.items())))
