"""The blameless default template and how a new postmortem's sections are first filled."""

from __future__ import annotations

import datetime as dt

from incidents.models import Incident
from postmortems.facts import IncidentFacts, humanize

TIMELINE_KEY = "timeline"

DEFAULT_TEMPLATE_NAME = "Blameless postmortem"

# Prompts ask what about the system allowed this, never who.
DEFAULT_SECTIONS: list[dict[str, str]] = [
    {
        "key": "summary",
        "title": "Summary",
        "prompt": "In three or four sentences: what happened, who was affected, how it ended.",
    },
    {
        "key": "impact",
        "title": "Customer impact",
        "prompt": "Who noticed what, for how long? Numbers beat adjectives: requests failed, "
        "customers affected, money, support tickets.",
    },
    {
        "key": "detection",
        "title": "Detection",
        "prompt": "How did we find out? Would we have found out without a customer telling "
        "us? What signal would have told us sooner?",
    },
    {
        "key": "response",
        "title": "Response",
        "prompt": "How did the response unfold? What made it faster or slower to "
        "acknowledge, diagnose and mitigate?",
    },
    {
        "key": "recovery",
        "title": "Recovery",
        "prompt": "How was service restored, and how do we know it was fully restored?",
    },
    {
        "key": TIMELINE_KEY,
        "title": "Timeline",
        "prompt": "Key moments, chosen from the incident timeline and extended with what was "
        "found afterwards.",
    },
    {
        "key": "contributing_factors",
        "title": "Contributing factors",
        "prompt": "What about the system allowed this to happen? Which conditions, defaults, "
        "missing guard rails or pressures made the failure possible? Describe the system, "
        "not a person: “the deploy tool allowed…”, not “X forgot…”.",
    },
    {
        "key": "went_well",
        "title": "What went well",
        "prompt": "What worked, and should be kept or spread?",
    },
    {
        "key": "went_poorly",
        "title": "What went poorly",
        "prompt": "Where did tools, processes or information let the responders down?",
    },
    {
        "key": "lucky",
        "title": "Where we got lucky",
        "prompt": "What could have made this much worse, and did not, by chance?",
    },
    {
        "key": "lessons",
        "title": "Lessons",
        "prompt": "What do we now know about our systems that we did not before?",
    },
]


def initial_bodies(incident: Incident, facts: IncidentFacts) -> dict[str, str]:
    """Start the sections from what the incident already records, so nobody retypes it."""
    services = ", ".join(facts.services) or "none recorded"
    impact_end = _utc(incident.mitigated_at or incident.resolved_at)
    return {
        "summary": incident.summary,
        "impact": (
            f"Impact lasted **{humanize(facts.impact_duration)}**, "
            f"from {_utc(facts.impact_started_at)} until {impact_end}.\n\n"
            f"Affected services: {services}."
        ),
        "detection": (
            f"Detected through: {facts.detection_source.lower()}. "
            f"Time to detect: **{humanize(facts.time_to_detect)}** after impact began."
        ),
        "response": (
            f"Time to acknowledge: **{humanize(facts.time_to_acknowledge)}**. "
            f"Time to mitigate: **{humanize(facts.time_to_mitigate)}** after impact began."
        ),
        "recovery": (
            f"Resolved at {_utc(facts.resolved_at)} "
            f"({humanize(facts.time_to_resolve)} after impact began)."
        ),
    }


def _utc(value) -> str:
    if value is None:
        return "not recorded"
    return value.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")
