"""One line of the audit log: a state-changing call (or a preemption the scheduling cycle
committed), who made it, from where, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str  # "" when the caller was not authenticated
    role: str  # a `Role` value, or "broker" for the scheduling cycle
    method: str  # e.g. "AdminService/AddUser", or "Scheduler/Preempt"
    target: str  # what it acted on: ids and names only, never a secret
    peer: str  # the caller's address
    outcome: str  # "OK" or a status code's name
    detail: str = ""  # a refusal's message; a preemption's reason
