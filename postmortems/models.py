"""Postmortems and action items, built on incidents.

Models hold fields, constraints and state predicates. Every write goes through
`postmortems.services`, which locks the postmortem (or item) row, re-checks state and keeps
the history (section revisions, review events, the incident timeline) in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident, Severity, TimelineEntry
from oncall.models import Team


class PostmortemPolicy(models.Model):
    """Per-severity rule: is a postmortem required, and how many working days after
    resolution is it due."""

    severity = models.OneToOneField(
        Severity, on_delete=models.CASCADE, related_name="postmortem_policy"
    )
    required = models.BooleanField(default=False)
    due_working_days = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text="Working days (Monday to Friday) after resolution.",
    )

    class Meta:
        ordering = ["severity__level"]
        verbose_name_plural = "postmortem policies"

    def __str__(self) -> str:
        if not self.required:
            return f"{self.severity.name}: optional"
        return f"{self.severity.name}: required within {self.due_working_days} working days"


class PostmortemTemplate(models.Model):
    """The sections a new postmortem starts with. `sections` is a list of
    {"key", "title", "prompt"}; the key "timeline" is the chosen incident timeline."""

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    sections = models.JSONField(default=list)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_template"
            )
        ]

    def __str__(self) -> str:
        return self.name


class PostmortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"


class Postmortem(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    title = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=PostmortemStatus.choices, default=PostmortemStatus.DRAFT
    )
    template = models.ForeignKey(
        PostmortemTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_postmortems",
    )
    authors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="authored_postmortems"
    )
    required = models.BooleanField(default=False, help_text="Required by the severity policy.")
    due_date = models.DateField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # "Revision 2" after a published postmortem is reopened for changes.
    revision_number = models.PositiveIntegerField(default=1)
    # Bumped with every change to what the PDF shows: the export cache key.
    content_version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "due_date"], name="postmortem_status_due")]

    def __str__(self) -> str:
        return f"Postmortem of {self.incident.reference}: {self.title}"

    @property
    def is_published(self) -> bool:
        return self.status == PostmortemStatus.PUBLISHED

    def is_late(self, today: dt.date | None = None) -> bool:
        if self.is_published or self.due_date is None:
            return False
        return (today or timezone.localdate()) > self.due_date


class PostmortemSection(models.Model):
    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="sections")
    key = models.SlugField(max_length=40)
    title = models.CharField(max_length=100)
    prompt = models.TextField(blank=True)
    position = models.PositiveSmallIntegerField()
    body = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    # Optimistic lock: a save must name the version it was edited from.
    version = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["postmortem", "key"], name="unique_section_key")
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.postmortem_id})"

    @property
    def is_timeline(self) -> bool:
        return self.key == "timeline"


class SectionRevision(models.Model):
    """Every saved version of a section's text, kept for history."""

    section = models.ForeignKey(
        PostmortemSection, on_delete=models.CASCADE, related_name="revisions"
    )
    version = models.PositiveIntegerField()
    body = models.TextField(blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    edited_at = models.DateTimeField()

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["section", "version"], name="unique_section_version")
        ]

    def __str__(self) -> str:
        return f"{self.section} v{self.version}"


class PostmortemTimelineItem(models.Model):
    """One line of the postmortem's timeline: picked from the incident timeline, or added
    afterwards (something found during the investigation)."""

    postmortem = models.ForeignKey(
        Postmortem, on_delete=models.CASCADE, related_name="timeline_items"
    )
    source_entry = models.ForeignKey(
        TimelineEntry, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    occurred_at = models.DateTimeField()
    body = models.TextField()
    body_html = models.TextField()
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["occurred_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["postmortem", "source_entry"],
                condition=Q(source_entry__isnull=False),
                name="timeline_entry_once_per_postmortem",
            )
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.body[:40]}"

    @property
    def found_afterwards(self) -> bool:
        return self.source_entry_id is None


class PostmortemReviewer(models.Model):
    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="reviewers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="postmortem_reviews"
    )
    requested_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["requested_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["postmortem", "user"], name="unique_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.user} reviews {self.postmortem_id}"


class ReviewComment(models.Model):
    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="comments")
    section = models.ForeignKey(
        PostmortemSection, on_delete=models.CASCADE, null=True, blank=True, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField()
    body_html = models.TextField()
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Comment {self.pk} on {self.postmortem_id}"


class AuditEvent(models.Model):
    """One line of history: who did what, when. Newest first."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    at = models.DateTimeField()
    body = models.TextField()

    class Meta:
        abstract = True
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return self.body


class PostmortemEvent(AuditEvent):
    """The postmortem's own audit log: created, submitted, approved, published, revised."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="events")

    class Meta(AuditEvent.Meta):
        pass


class ActionItemType(models.TextChoices):
    DETECTIVE = "detective", "Detective"
    PREVENTIVE = "preventive", "Preventive"
    CORRECTIVE = "corrective", "Corrective"


class ActionItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won’t do"


OPEN_ITEM_STATUSES = (ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS)


class ActionItemPriority(models.IntegerChoices):
    P1 = 1, "P1 · Urgent"
    P2 = 2, "P2 · High"
    P3 = 3, "P3 · Medium"
    P4 = 4, "P4 · Low"


class ActionItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="action_items")
    postmortem = models.ForeignKey(
        Postmortem, on_delete=models.SET_NULL, null=True, blank=True, related_name="action_items"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    description_html = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="action_items",
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="action_items"
    )
    due_date = models.DateField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(
        choices=ActionItemPriority.choices, default=ActionItemPriority.P3
    )
    item_type = models.CharField(max_length=16, choices=ActionItemType.choices)
    status = models.CharField(
        max_length=16, choices=ActionItemStatus.choices, default=ActionItemStatus.OPEN
    )
    wont_do_reason = models.TextField(blank=True)
    tracker_url = models.URLField(blank=True, max_length=500)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_date", "priority", "pk"]
        indexes = [
            models.Index(fields=["status", "due_date"], name="action_item_status_due"),
            models.Index(fields=["owner", "status"], name="action_item_owner_status"),
            models.Index(fields=["team", "status"], name="action_item_team_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="wont_do") | ~Q(wont_do_reason=""),
                name="wont_do_needs_reason",
            )
        ]

    def __str__(self) -> str:
        return f"AI-{self.pk} {self.title}"

    @property
    def reference(self) -> str:
        return f"AI-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ITEM_STATUSES

    def is_overdue(self, today: dt.date | None = None) -> bool:
        return (
            self.is_open
            and self.due_date is not None
            and self.due_date < (today or timezone.localdate())
        )

    def days_overdue(self, today: dt.date | None = None) -> int:
        if not self.is_overdue(today):
            return 0
        return ((today or timezone.localdate()) - self.due_date).days


class ActionItemEvent(AuditEvent):
    """History of one action item: created, status changes, edits."""

    item = models.ForeignKey(ActionItem, on_delete=models.CASCADE, related_name="events")

    class Meta(AuditEvent.Meta):
        pass


class ReminderKind(models.TextChoices):
    DIGEST = "digest", "Action item digest"
    ESCALATION = "escalation", "Overdue escalation to a manager"
    POSTMORTEM_LATE = "postmortem_late", "Late postmortem reminder"


class ReminderSent(models.Model):
    """A reminder claimed (and then sent). The unique constraint is the claim: a second
    worker, a re-delivered task or a restarted beat cannot insert the same row again."""

    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # The recipient's local day for digests; the item's due date for escalations.
    for_date = models.DateField()
    # "" for a digest; "item:<id>" for an escalation of one item.
    subject_key = models.CharField(max_length=64, blank=True, default="")
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    item_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-claimed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "recipient", "for_date", "subject_key"], name="reminder_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient_id} for {self.for_date} {self.subject_key}"


class ExportState(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RENDERING = "rendering", "Rendering"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class PostmortemExport(models.Model):
    """A rendered PDF, stored in the database so every web process and worker shares it.
    One per (postmortem, content_version): a change to the postmortem makes a new one."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="exports")
    # What the PDF shows: postmortem revision and content version, and the incident's
    # revision (milestones, services). Any change makes a new key, so a new render.
    content_key = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=ExportState.choices, default=ExportState.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)
    render_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["postmortem", "content_key"], name="one_export_per_content"
            )
        ]

    def __str__(self) -> str:
        return f"PDF of {self.postmortem_id} {self.content_key} ({self.state})"

    @property
    def is_ready(self) -> bool:
        return self.state == ExportState.READY
