"""What the incident's milestones and services already say: impact duration, time to
detect, acknowledge and mitigate. Computed live, so a corrected milestone shows at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from incidents.models import Incident


def _between(start: datetime | None, end: datetime | None) -> timedelta | None:
    if start is None or end is None or end < start:
        return None
    return end - start


def humanize(delta: timedelta | None) -> str:
    if delta is None:
        return "not recorded"
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} d")
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


@dataclass(frozen=True)
class IncidentFacts:
    impact_started_at: datetime | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    impact_duration: timedelta | None
    time_to_detect: timedelta | None
    time_to_acknowledge: timedelta | None
    time_to_mitigate: timedelta | None
    time_to_resolve: timedelta | None
    services: tuple[str, ...]
    detection_source: str

    @property
    def rows(self) -> list[tuple[str, str]]:
        return [
            ("Impact duration", humanize(self.impact_duration)),
            ("Time to detect", humanize(self.time_to_detect)),
            ("Time to acknowledge", humanize(self.time_to_acknowledge)),
            ("Time to mitigate", humanize(self.time_to_mitigate)),
            ("Time to resolve", humanize(self.time_to_resolve)),
        ]


def incident_facts(incident: Incident, services: list | None = None) -> IncidentFacts:
    """`services` may be passed when already loaded (prefetched) to save a query."""
    names = tuple(s.name for s in (services if services is not None else incident.services.all()))
    impact_end = incident.mitigated_at or incident.resolved_at
    return IncidentFacts(
        impact_started_at=incident.impact_started_at,
        detected_at=incident.detected_at,
        acknowledged_at=incident.acknowledged_at,
        mitigated_at=incident.mitigated_at,
        resolved_at=incident.resolved_at,
        impact_duration=_between(incident.impact_started_at, impact_end),
        time_to_detect=_between(incident.impact_started_at, incident.detected_at),
        time_to_acknowledge=_between(incident.detected_at, incident.acknowledged_at),
        time_to_mitigate=_between(incident.impact_started_at, incident.mitigated_at),
        time_to_resolve=_between(incident.impact_started_at, incident.resolved_at),
        services=names,
        detection_source=incident.get_detection_source_display(),
    )
