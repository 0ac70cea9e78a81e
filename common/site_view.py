"""A site as the admin sees it: the site, and the GPUs its live runs hold now."""

from __future__ import annotations

from dataclasses import dataclass

from minga.common.domain import Site


@dataclass(frozen=True, slots=True)
class SiteView:
    site: Site
    gpus_in_use: tuple[tuple[str, int], ...] = ()  # (model, GPUs held by live runs), by model

    @property
    def gpus_held(self) -> int:
        """GPUs its live runs hold, all models: 0 once a drained site's runs have ended."""
        return sum(n for _, n in self.gpus_in_use)
