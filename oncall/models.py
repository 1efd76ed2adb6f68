"""People and teams: the lower layer everything else builds on."""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone (for example Europe/London).")


class User(AbstractUser):
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Times are shown to you in this zone.",
    )

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(User, through="TeamMembership", related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MANAGER = "manager", "Manager"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="unique_team_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


# --- How to reach people ------------------------------------------------------------------


class ContactMethod(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        SLACK = "slack", "Slack-compatible webhook"
        WEBHOOK = "webhook", "Signed webhook"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="contact_methods")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    label = models.CharField(max_length=60, blank=True)
    # An email address, a phone number in international format, or an https URL.
    address = models.CharField(max_length=500)
    # Signing secret for generic webhooks; receivers verify X-Firebreak-Signature with it.
    secret = models.CharField(max_length=64, blank=True)
    # Set when a delivery failed permanently (bad address, 4xx): shown to the owner.
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "kind", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label or self.address}"

    @property
    def is_usable(self) -> bool:
        return self.disabled_at is None


class NotificationRule(models.Model):
    """'Email me at once, SMS after 5 minutes': one row per step of a person's rules."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notification_rules")
    contact_method = models.ForeignKey(
        ContactMethod, on_delete=models.CASCADE, related_name="rules"
    )
    delay_minutes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delay_minutes", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact_method", "delay_minutes"], name="one_rule_per_method_and_delay"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_method} after {self.delay_minutes} min"


# --- Schedules -----------------------------------------------------------------------------


class Schedule(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="schedules"
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    description = models.TextField(blank=True)
    # sha256 of the secret iCal feed token; empty when no feed is published.
    ical_token_hash = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ScheduleLayer(models.Model):
    class ShiftUnit(models.TextChoices):
        HOURS = "hours", "Hours"
        DAYS = "days", "Days"
        WEEKS = "weeks", "Weeks"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="layers")
    name = models.CharField(max_length=100)
    # Higher layers win where they have someone on call.
    level = models.PositiveSmallIntegerField(default=1)
    shift_unit = models.CharField(max_length=5, choices=ShiftUnit.choices, default=ShiftUnit.WEEKS)
    shift_count = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    # First handoff, as a wall-clock date and time in the schedule's zone.
    start_date = models.DateField()
    handoff_time = models.TimeField()
    # Optional restriction: only on these weekdays (0=Monday) and between these local times.
    restrict_weekdays = models.CharField(max_length=7, blank=True)
    restrict_start = models.TimeField(null=True, blank=True)
    restrict_end = models.TimeField(null=True, blank=True)

    class Meta:
        ordering = ["-level", "pk"]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.name}"


class LayerParticipant(models.Model):
    layer = models.ForeignKey(ScheduleLayer, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.user} #{self.position} in {self.layer}"


class ScheduleOverride(models.Model):
    """Someone covers a time range. Later overrides win over earlier ones."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    replaces = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="override_has_length"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} covers {self.schedule} {self.starts_at:%Y-%m-%d %H:%M}"


# --- Escalation policies -------------------------------------------------------------------


class EscalationPolicy(models.Model):
    name = models.CharField(max_length=100, unique=True)
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="escalation_policies"
    )
    description = models.TextField(blank=True)
    # How many more times the whole policy runs if nobody acknowledges.
    repeat_count = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    # How long to wait for an acknowledgement before the next step.
    delay_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.policy} step {self.position}"


class StepTarget(models.Model):
    class Kind(models.TextChoices):
        USER = "user", "Person"
        SCHEDULE = "schedule", "On call on a schedule"
        TEAM = "team", "Every member of a team"

    step = models.ForeignKey(EscalationStep, on_delete=models.CASCADE, related_name="targets")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, null=True, blank=True)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind="user", user__isnull=False, schedule__isnull=True, team__isnull=True
                    )
                    | models.Q(
                        kind="schedule",
                        schedule__isnull=False,
                        user__isnull=True,
                        team__isnull=True,
                    )
                    | models.Q(
                        kind="team", team__isnull=False, user__isnull=True, schedule__isnull=True
                    )
                ),
                name="step_target_names_exactly_one_thing",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.user or self.schedule or self.team}"


# --- Running escalations -------------------------------------------------------------------


class Escalation(models.Model):
    """One run of a policy for something that needs a human (an incident, an alert).

    The policy is frozen into `snapshot` when it starts, so editing the policy never
    changes an escalation already running. The database says what is due: `next_step_at`.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Escalating"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        EXHAUSTED = "exhausted", "Nobody acknowledged"

    # What this is about, opaque to oncall (for example "incident:42"); upper layers map it.
    subject_key = models.CharField(max_length=100, db_index=True)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    link_url = models.CharField(max_length=500, blank=True)
    policy = models.ForeignKey(
        EscalationPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    snapshot = models.JSONField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    step_index = models.PositiveIntegerField(default=0)
    cycle = models.PositiveIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["state", "next_step_at"], name="escalation_due")]

    def __str__(self) -> str:
        return f"Escalation {self.pk} for {self.subject_key} ({self.state})"


class Page(models.Model):
    """One person paged by one step of one escalation cycle: at most once, by constraint."""

    escalation = models.ForeignKey(Escalation, on_delete=models.CASCADE, related_name="pages")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="pages")
    step_index = models.PositiveIntegerField()
    cycle = models.PositiveIntegerField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["escalation", "user", "step_index", "cycle"], name="page_once_per_step"
            )
        ]

    def __str__(self) -> str:
        return f"Page {self.user} for escalation {self.escalation_id}"


class Notification(models.Model):
    """One delivery attempt series to one contact method for one page.

    Claimed with a conditional UPDATE before sending and its outcome recorded after, so
    two workers never both send it.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        SENDING = "sending", "Sending"
        SENT = "sent", "Delivered"
        FAILED = "failed", "Failed"
        THROTTLED = "throttled", "Held back (bundled)"
        CANCELLED = "cancelled", "Not needed"

    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="notifications")
    contact_method = models.ForeignKey(
        ContactMethod, on_delete=models.CASCADE, related_name="notifications"
    )
    # Which of the person's rules this is ("SMS after 5 minutes").
    delay_minutes = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    due_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a tick last handed it to the broker: ticks do not flood the queue with repeats.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    receipt = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    bundled_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="bundled"
    )

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["page", "contact_method", "delay_minutes"],
                name="notify_each_rule_once_per_page",
            )
        ]
        indexes = [models.Index(fields=["state", "due_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.contact_method} for page {self.page_id} ({self.state})"


# --- Calendar feeds and handoff notices ----------------------------------------------------


class UserCalendarFeed(models.Model):
    """A person's secret iCal feed of their own shifts. Only the token's sha256 is kept."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="calendar_feed")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"


class HandoffNotice(models.Model):
    """ "You are on call for Platform from 09:00": one row per person, schedule and shift start.

    The row is written (claimed) before the notice is sent, and the unique constraint makes
    a second sweep, a second beat or a restarted worker find it there and send nothing.
    """

    class State(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Delivered"
        FAILED = "failed", "Failed"
        UNREACHABLE = "unreachable", "No usable contact method"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="handoff_notices")
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="+")
    shift_start = models.DateTimeField()
    shift_end = models.DateTimeField(null=True, blank=True)
    contact_method = models.ForeignKey(
        ContactMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.SENDING)
    receipt = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-shift_start", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "schedule", "shift_start"], name="handoff_notice_once_per_shift"
            )
        ]

    def __str__(self) -> str:
        return f"Handoff notice to {self.user} for {self.schedule} at {self.shift_start:%Y-%m-%d}"
