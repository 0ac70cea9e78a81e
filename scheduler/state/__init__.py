"""The leader's in-memory federation (`FederationState`), kept level with the store."""

from minga.scheduler.state.federation import FederationState

__all__ = ["FederationState"]
