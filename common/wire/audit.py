"""Audit log lines (common/audit.py) to and from their messages."""

from __future__ import annotations

from minga.common.audit import AuditEntry
from minga.v1 import admin_pb2


def audit_entry_to_pb(e: AuditEntry) -> admin_pb2.AuditEntry:
    return admin_pb2.AuditEntry(
        at=e.at,
        who=e.who,
        role=e.role,
        method=e.method,
        target=e.target,
        peer=e.peer,
        outcome=e.outcome,
        detail=e.detail,
    )


def audit_entry_from_pb(pb: admin_pb2.AuditEntry) -> AuditEntry:
    return AuditEntry(
        at=pb.at,
        who=pb.who,
        role=pb.role,
        method=pb.method,
        target=pb.target,
        peer=pb.peer,
        outcome=pb.outcome,
        detail=pb.detail,
    )
