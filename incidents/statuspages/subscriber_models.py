"""Status page subscribers and scheduled maintenance models.

Imported at the bottom of incidents/models.py.

The delivery pipeline is three tables:
  StatusSubscriber   who wants to hear about a page (email, double opt-in; or a webhook)
  StatusEvent        something subscribers are told about, frozen when it happened: the
                     text published to that page and the components it touched. A
                     subscriber is never sent more than what was published to the page.
  StatusDelivery     one row per subscriber per event (unique): the database is the queue,
                     a worker claims a row with a conditional UPDATE.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = [
    "ScheduledMaintenance",
    "StatusDelivery",
    "StatusEvent",
    "StatusSubscriber",
]


class StatusSubscriber(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    page = models.ForeignKey(
        "incidents.StatusPage", on_delete=models.CASCADE, related_name="subscribers"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EMAIL)
    # Stored lower-cased, so "Ann@Example.com" and "ann@example.com" are one subscriber.
    email = models.EmailField(max_length=254, blank=True)
    url = models.URLField(max_length=500, blank=True)
    # Kept as given: it keys the HMAC signature, so it cannot be stored as a hash.
    secret = models.CharField(max_length=128, blank=True)
    label = models.CharField(max_length=100, blank=True)
    # No components means the whole page.
    components = models.ManyToManyField(
        "incidents.Component", blank=True, related_name="subscribers"
    )
    # What the latest subscribe request asked for; applied when its link is confirmed, so
    # a stranger typing someone's address cannot change what they receive.
    pending_component_ids = models.JSONField(default=list, blank=True)
    # Internal pages: the signed-in person who subscribed; their access is re-checked
    # before every email.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="status_subscriptions",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # sha256 of the confirmation token sent by email; the token itself is never stored.
    confirmation_token_hash = models.CharField(max_length=64, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # Changing it invalidates every unsubscribe link mailed so far.
    link_generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["page", "kind", "email", "url"]
        constraints = [
            models.UniqueConstraint(
                fields=["page", "email"],
                condition=Q(kind="email"),
                name="one_email_subscriber_per_page",
            ),
            models.CheckConstraint(
                condition=(Q(kind="email") & ~Q(email="")) | (Q(kind="webhook") & ~Q(url="")),
                name="status_subscriber_has_address",
            ),
        ]
        indexes = [
            models.Index(
                fields=["page", "kind"],
                condition=Q(confirmed_at__isnull=False, unsubscribed_at__isnull=True),
                name="status_subscriber_active",
            )
        ]

    def __str__(self) -> str:
        return self.email if self.kind == self.Kind.EMAIL else (self.label or self.url)

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None


class ScheduledMaintenance(models.Model):
    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    page = models.ForeignKey(
        "incidents.StatusPage", on_delete=models.CASCADE, related_name="maintenances"
    )
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    components = models.ManyToManyField(
        "incidents.Component", blank=True, related_name="maintenances"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    notice_minutes = models.PositiveIntegerField(default=60)
    state = models.CharField(max_length=12, choices=State.choices, default=State.SCHEDULED)
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # {component id: status before the window}, written when it starts (see maintenance.py).
    statuses_before = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="scheduled_maintenance_ends_after_start",
            )
        ]
        indexes = [models.Index(fields=["state", "starts_at"], name="sched_maint_state_start")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_upcoming(self) -> bool:
        return self.state == self.State.SCHEDULED

    @property
    def is_in_progress(self) -> bool:
        return self.state == self.State.IN_PROGRESS


class StatusEvent(models.Model):
    class Kind(models.TextChoices):
        UPDATE = "update", "Incident update"
        COMPONENT = "component", "Component status"
        MAINTENANCE_SCHEDULED = "maintenance_scheduled", "Maintenance coming up"
        MAINTENANCE_STARTED = "maintenance_started", "Maintenance started"
        MAINTENANCE_COMPLETED = "maintenance_completed", "Maintenance completed"
        MAINTENANCE_CANCELLED = "maintenance_cancelled", "Maintenance cancelled"

    page = models.ForeignKey(
        "incidents.StatusPage", on_delete=models.CASCADE, related_name="status_events"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    # One event per thing that happened, whichever receiver or sweep records it first.
    key = models.CharField(max_length=120)
    # What subscribers may be told, frozen now: title, message, status, components...
    data = models.JSONField(default=dict)
    # Subscribers to any of these components hear about it; empty means "the whole page
    # only" (whole-page subscribers hear about everything).
    component_ids = models.JSONField(default=list, blank=True)
    maintenance = models.ForeignKey(
        ScheduledMaintenance, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every delivery row exists.
    fanned_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["page", "key"], name="one_status_event_per_key")
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(fanned_out_at__isnull=True),
                name="status_event_not_fanned_out",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.page_id}"


class StatusDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    event = models.ForeignKey(StatusEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(
        StatusSubscriber, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    receipt = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="one_status_delivery_per_subscriber"
            )
        ]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(state="pending"),
                name="status_delivery_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscriber} ({self.state})"

    @property
    def delivery_id(self) -> str:
        return f"status-{self.pk}"
