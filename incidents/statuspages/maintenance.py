"""Scheduled maintenance: planned windows that start and complete on time by themselves.

(Stub committed early so the status page can call the selector; the services follow.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PageMaintenances:
    """What a status page shows: windows in progress now, then those still to come.

    Each item is a ScheduledMaintenance with `components` prefetched; use `.title`,
    `.message` (plain text), `.starts_at`, `.ends_at`, `.state`, `.get_state_display()`
    and `.components.all()`.
    """

    in_progress: list = field(default_factory=list)
    upcoming: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.in_progress or self.upcoming)


def maintenances_for_page(*, page, now: datetime | None = None) -> PageMaintenances:
    """Maintenance in progress and upcoming for `page`, soonest first (two queries)."""
    return PageMaintenances()
