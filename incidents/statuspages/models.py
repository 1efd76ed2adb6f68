"""Status page models. Imported at the bottom of incidents/models.py.

A status page shows components (grouped) and what was *published* about incidents. Nothing
on a page is read from the incident itself except through `StatusPageIncident` (the public
title chosen for that page) and `StatusUpdate` (what was published to it), so a restricted
incident's title, severity, services and timeline can never reach a page by accident.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from oncall.models import Team, validate_time_zone


class StatusPageVisibility(models.TextChoices):
    PUBLIC = "public", "Public: anyone, no sign-in"
    INTERNAL = "internal", "Internal: anyone signed in"
    RESTRICTED = "restricted", "Internal: members of chosen teams only"


class ComponentStatus(models.TextChoices):
    """Ordered from best to worst; `COMPONENT_STATUS_RANK` is what "worst wins" compares."""

    OPERATIONAL = "operational", "Operational"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"


COMPONENT_STATUS_RANK: dict[str, int] = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class PublicStatus(models.TextChoices):
    """What a public update says about the incident; separate from the incident's own status."""

    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"


class StatusPage(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=120)
    description = models.TextField(blank=True, help_text="Shown under the title. Plain text.")
    visibility = models.CharField(
        max_length=16, choices=StatusPageVisibility.choices, default=StatusPageVisibility.PUBLIC
    )
    teams = models.ManyToManyField(
        Team,
        blank=True,
        related_name="status_pages",
        help_text="For restricted pages: whose members may read it.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Days in the history bars and times on a public page are in this zone.",
    )
    order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "title"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_public(self) -> bool:
        return self.visibility == StatusPageVisibility.PUBLIC

    @property
    def audience_label(self) -> str:
        return {"public": "public", "internal": "internal", "restricted": "teams only"}[
            self.visibility
        ]


class ComponentGroup(models.Model):
    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["page", "name"], name="unique_group_name_per_page")
        ]

    def __str__(self) -> str:
        return f"{self.page.title} · {self.name}"


class Component(models.Model):
    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="components")
    group = models.ForeignKey(
        ComponentGroup,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="components",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)
    services = models.ManyToManyField(
        "incidents.Service",
        blank=True,
        related_name="status_components",
        help_text="The services whose incidents affect this component.",
    )
    # Denormalised from the open interval so the page never scans intervals to draw itself.
    status = models.CharField(
        max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Days before this are drawn as "no data" in the history bars, not as operational.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["page", "name"], name="unique_component_name_per_page")
        ]

    def __str__(self) -> str:
        return f"{self.page.title} · {self.name}"

    @property
    def status_rank(self) -> int:
        return COMPONENT_STATUS_RANK[self.status]


class ComponentStatusInterval(models.Model):
    """A span during which a component had one status; the history bars are computed from
    these. Exactly one interval per component is open (ended_at is NULL) once it has been set."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="intervals")
    status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    incident = models.ForeignKey(
        "incidents.Incident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="component_intervals",
    )
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["component", "started_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["component"],
                condition=Q(ended_at__isnull=True),
                name="one_open_interval_per_component",
            )
        ]
        indexes = [
            models.Index(fields=["component", "ended_at"], name="interval_component_ended"),
        ]

    def __str__(self) -> str:
        return f"{self.component.name}: {self.status} from {self.started_at:%Y-%m-%d %H:%M}"


class StatusPageIncident(models.Model):
    """An incident as one page shows it: the public title chosen for that audience and the
    latest published status. Exists only once something has been published to the page."""

    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="page_incidents")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="status_page_entries"
    )
    public_title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=PublicStatus.choices)
    first_published_at = models.DateTimeField()
    last_published_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_published_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["page", "incident"], name="one_entry_per_page_incident")
        ]
        indexes = [
            models.Index(fields=["page", "resolved_at"], name="page_incident_resolved"),
        ]

    def __str__(self) -> str:
        return f"{self.public_title} on {self.page.slug}"

    @property
    def is_active(self) -> bool:
        return self.resolved_at is None


class StatusUpdate(models.Model):
    """One public update, published at once to one or more pages."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="status_updates"
    )
    pages = models.ManyToManyField(StatusPage, related_name="status_updates")
    status = models.CharField(max_length=16, choices=PublicStatus.choices)
    message = models.TextField(help_text="Markdown.")
    message_html = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["-published_at", "-pk"]
        indexes = [
            models.Index(fields=["incident", "-published_at"], name="status_update_incident"),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} update on {self.incident_id} at {self.published_at}"


class StatusUpdateTemplate(models.Model):
    """A ready-made public message for common situations ("We are investigating…")."""

    name = models.CharField(max_length=100, unique=True)
    status = models.CharField(
        max_length=16, choices=PublicStatus.choices, default=PublicStatus.INVESTIGATING
    )
    message = models.TextField(help_text="Markdown.")
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


__all__ = [
    "COMPONENT_STATUS_RANK",
    "Component",
    "ComponentGroup",
    "ComponentStatus",
    "ComponentStatusInterval",
    "PublicStatus",
    "StatusPage",
    "StatusPageIncident",
    "StatusPageVisibility",
    "StatusUpdate",
    "StatusUpdateTemplate",
]
