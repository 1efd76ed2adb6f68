"""Heartbeat monitors (a job pings; silence raises an alert).

Imported at the bottom of incidents/models.py."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# Loaded from the bottom of incidents/models.py, after the alert models it builds on.
from incidents.models import AlertSeverity


class HeartbeatState(models.TextChoices):
    NEW = "new", "Waiting for the first ping"
    UP = "up", "Up"
    DOWN = "down", "Down: a ping was missed"
    PAUSED = "paused", "Paused"


class HeartbeatMonitor(models.Model):
    """Watching the watchers: a job pings a secret URL every `interval_minutes`.

    The secret is the token of the integration (kind "heartbeat"), stored hashed like every
    other integration's. `due_at` is when silence becomes a missed ping; the sweep finds
    overdue monitors through its index, and a conditional UPDATE on `state` decides which
    beat raises the alert, so two beats never raise it twice.
    """

    integration = models.OneToOneField(
        "incidents.Integration", on_delete=models.CASCADE, related_name="heartbeat"
    )
    interval_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(60 * 24 * 31)],
        help_text="How often the job pings.",
    )
    grace_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MaxValueValidator(60 * 24 * 7)],
        help_text="How late a ping may be before it counts as missed.",
    )
    severity = models.CharField(
        max_length=10,
        choices=AlertSeverity.choices,
        default=AlertSeverity.ERROR,
        help_text="The severity of the alert a missed ping raises.",
    )
    state = models.CharField(
        max_length=10, choices=HeartbeatState.choices, default=HeartbeatState.NEW
    )
    last_ping_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    # When the state last changed to down (the alert's "since").
    down_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["state", "due_at"], name="heartbeat_state_due")]

    def __str__(self) -> str:
        return f"Heartbeat {self.integration.name} ({self.state})"

    @property
    def allowance(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes + self.grace_minutes)
