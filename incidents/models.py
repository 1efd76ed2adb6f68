"""Incidents and what hangs off them: roles, tasks, stakeholder updates and the timeline.

Models hold fields and state predicates only. Every change to an incident goes through
`incidents.services`, which writes the timeline entry in the same transaction.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from oncall.models import Team


class Severity(models.Model):
    level = models.PositiveSmallIntegerField(unique=True, help_text="1 is the most severe.")
    name = models.CharField(max_length=20, unique=True, help_text="Short name, e.g. SEV1.")
    label = models.CharField(max_length=40, help_text="e.g. Critical")
    description = models.TextField(help_text="What counts as this severity, written down.")
    update_cadence_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(5)],
        help_text="How often stakeholders expect an update while the incident is open.",
    )

    class Meta:
        ordering = ["level"]
        verbose_name_plural = "severities"

    def __str__(self) -> str:
        return f"{self.name} · {self.label}"

    @property
    def update_cadence(self) -> timedelta:
        return timedelta(minutes=self.update_cadence_minutes)


class IncidentType(models.Model):
    name = models.CharField(max_length=60, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    description = models.TextField(blank=True)
    runbook_url = models.URLField(blank=True)
    escalation_policy = models.ForeignKey(
        "oncall.EscalationPolicy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="services",
        help_text="Who is paged when an incident is declared on this service.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
)

# The only moves a commander may make. Going back (monitoring -> investigating) is allowed
# because a fix that did not hold is common; closed is final.
ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    IncidentStatus.INVESTIGATING: (
        IncidentStatus.IDENTIFIED,
        IncidentStatus.MONITORING,
        IncidentStatus.RESOLVED,
    ),
    IncidentStatus.IDENTIFIED: (
        IncidentStatus.MONITORING,
        IncidentStatus.INVESTIGATING,
        IncidentStatus.RESOLVED,
    ),
    IncidentStatus.MONITORING: (
        IncidentStatus.RESOLVED,
        IncidentStatus.INVESTIGATING,
        IncidentStatus.IDENTIFIED,
    ),
    IncidentStatus.RESOLVED: (IncidentStatus.CLOSED, IncidentStatus.INVESTIGATING),
    IncidentStatus.CLOSED: (),
}


class DetectionSource(models.TextChoices):
    ALERT = "alert", "Alert from monitoring"
    INTERNAL_REPORT = "internal_report", "Internal report"
    CUSTOMER_REPORT = "customer_report", "Customer report"


class Milestone(models.TextChoices):
    IMPACT_STARTED = "impact_started_at", "Impact started"
    DETECTED = "detected_at", "Detected"
    ACKNOWLEDGED = "acknowledged_at", "Acknowledged"
    MITIGATED = "mitigated_at", "Mitigated"
    RESOLVED = "resolved_at", "Resolved"


class Incident(models.Model):
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.ForeignKey(Severity, on_delete=models.PROTECT, related_name="incidents")
    incident_type = models.ForeignKey(
        IncidentType, on_delete=models.PROTECT, null=True, blank=True, related_name="incidents"
    )
    status = models.CharField(
        max_length=20, choices=IncidentStatus.choices, default=IncidentStatus.INVESTIGATING
    )
    detection_source = models.CharField(max_length=20, choices=DetectionSource.choices)
    restricted = models.BooleanField(
        default=False, help_text="Only people granted access (and role holders) can see it."
    )
    is_drill = models.BooleanField(default=False)
    services = models.ManyToManyField(Service, blank=True, related_name="incidents")
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    declared_at = models.DateTimeField()

    impact_started_at = models.DateTimeField(null=True, blank=True)
    detected_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    last_stakeholder_update_at = models.DateTimeField(null=True, blank=True)
    # When the update cadence last restarted: declared, an update posted, or reopened.
    cadence_started_at = models.DateTimeField(null=True, blank=True)
    next_update_due_at = models.DateTimeField(null=True, blank=True)
    # The missed due time we last reminded about: at most one reminder per missed update.
    update_reminder_sent_for = models.DateTimeField(null=True, blank=True)

    # Bumped with every change (always in the same transaction as the timeline entry), so a
    # poll can tell "nothing happened" from one indexed lookup.
    revision = models.PositiveIntegerField(default=0)
    # Bumped only when title or summary are edited: the optimistic-lock token for free text.
    details_version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-declared_at"]
        indexes = [
            models.Index(fields=["status", "-declared_at"], name="incident_status_declared"),
            models.Index(fields=["next_update_due_at"], name="incident_next_update_due"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def reference(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def allowed_transitions(self) -> tuple[str, ...]:
        return ALLOWED_TRANSITIONS[self.status]


class IncidentUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Incident, on_delete=models.CASCADE)


class IncidentGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Incident, on_delete=models.CASCADE)


class IncidentRole(models.TextChoices):
    COMMANDER = "commander", "Incident commander"
    DEPUTY = "deputy", "Deputy"
    SCRIBE = "scribe", "Scribe"
    COMMUNICATIONS_LEAD = "communications_lead", "Communications lead"
    INTERNAL_LIAISON = "internal_liaison", "Internal liaison"
    CUSTOMER_LIAISON = "customer_liaison", "Customer liaison"
    SUBJECT_MATTER_EXPERT = "subject_matter_expert", "Subject matter expert"


# Every role but SME is held by one person at a time; assigning it hands it over.
SINGLE_HOLDER_ROLES = tuple(r for r in IncidentRole if r != IncidentRole.SUBJECT_MATTER_EXPERT)


class RoleAssignment(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="roles")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_roles"
    )
    role = models.CharField(max_length=32, choices=IncidentRole.choices)
    assigned_at = models.DateTimeField()
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    relieved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["assigned_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "role"],
                condition=Q(relieved_at__isnull=True) & ~Q(role="subject_matter_expert"),
                name="one_active_holder_per_single_role",
            ),
            models.UniqueConstraint(
                fields=["incident", "role", "user"],
                condition=Q(relieved_at__isnull=True),
                name="no_duplicate_active_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.get_role_display()} on {self.incident.reference}"


class IncidentTask(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="incident_tasks",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


class StakeholderUpdate(models.Model):
    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="stakeholder_updates"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField()
    body_html = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Update on {self.incident_id} at {self.created_at:%Y-%m-%d %H:%M}"


class TimelineKind(models.TextChoices):
    DECLARED = "declared", "Declared"
    STATUS = "status", "Status"
    SEVERITY = "severity", "Severity"
    MILESTONE = "milestone", "Milestone"
    ROLE = "role", "Role"
    TASK = "task", "Task"
    UPDATE = "update", "Stakeholder update"
    NOTE = "note", "Note"
    DETAILS = "details", "Details"
    ACCESS = "access", "Access"
    REMINDER = "reminder", "Reminder"
    PAGING = "paging", "Paging"
    ALERT = "alert", "Alert"


class TimelineEntry(models.Model):
    """One thing that happened. The timeline is also the incident's audit log."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=16, choices=TimelineKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    occurred_at = models.DateTimeField()
    # Plain text for system entries, Markdown source for notes and updates.
    body = models.TextField()
    # Sanitised HTML, rendered once at write time so a 2,000-entry page stays cheap.
    body_html = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(default=False)
    # The incident revision at which `pinned` last changed, so the poll can re-send
    # entries whose pin changed since a watcher's last look.
    pin_revision = models.PositiveIntegerField(default=0)

    class Meta:
        # Entries are written as things happen, so id order is time order; the poll for
        # new entries and the "older" pager both walk the (incident, id) index.
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["incident", "-id"], name="timeline_incident_order"),
            models.Index(fields=["incident", "kind"], name="timeline_incident_kind"),
        ]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} {self.occurred_at:%Y-%m-%d %H:%M}"


class StakeholderUpdateReminder(models.Model):
    """One reminder per missed update, recorded before sending and marked after.

    The unique constraint makes "at most one reminder per missed update" a database fact,
    whichever worker or beat gets there first.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Nobody to remind"

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="update_reminders"
    )
    missed_due = models.DateTimeField()
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "missed_due"], name="one_reminder_per_missed_update"
            )
        ]
        indexes = [models.Index(fields=["state", "claimed_at"], name="reminder_state_claimed")]

    def __str__(self) -> str:
        return (
            f"Reminder for {self.incident_id} due {self.missed_due:%Y-%m-%d %H:%M} ({self.state})"
        )


class IntegrationKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    GENERIC = "generic", "Generic JSON webhook"
    HEARTBEAT = "heartbeat", "Heartbeat monitor"


class Integration(models.Model):
    """Where a monitoring tool sends alerts for one service.

    The secret token is the URL itself; only its SHA-256 is stored, so a database dump does
    not let anyone send alerts. Rotating replaces the hash and the old URL stops working.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="integrations")
    kind = models.CharField(max_length=20, choices=IntegrationKind.choices)
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # Generic webhooks: which payload fields give title, dedup_key, severity and status.
    field_mapping = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}) on {self.service}"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class AlertSeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    ERROR = "error", "Error"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class Alert(models.Model):
    """One problem a monitoring tool told us about, deduplicated by its key while open."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    # Indexed by alert_service_last_seen, which starts with it (every index is written on
    # every new alert: see Meta).
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="alerts", db_index=False
    )
    dedup_key = models.CharField(max_length=255)
    group_key = models.CharField(max_length=1024, blank=True)
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING
    )
    title = models.CharField(max_length=1024)
    severity = models.CharField(
        max_length=10, choices=AlertSeverity.choices, default=AlertSeverity.ERROR
    )
    source = models.CharField(max_length=255, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    times_seen = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    incident = models.ForeignKey(
        Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    # Null with acknowledged_at set: acknowledged by the monitoring tool, not a person.
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # a partial index in Meta
    )
    # The rule that decided what this alert did (null: the default behaviour applied).
    rule = models.ForeignKey(
        "AlertRule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # a partial index in Meta
    )
    # It arrived while its service was in a maintenance window: recorded, nobody paged.
    in_maintenance = models.BooleanField(default=False)

    class Meta:
        ordering = ["-last_seen", "-pk"]
        constraints = [
            # "The same key while open is the same alert", decided by the database.
            models.UniqueConstraint(
                fields=["integration", "dedup_key"],
                condition=~Q(status="resolved"),
                name="one_open_alert_per_dedup_key",
            )
        ]
        # Every new alert writes an entry in each index whose condition it meets, so those
        # a new alert rarely needs are partial.
        indexes = [
            models.Index(fields=["status", "-last_seen"], name="alert_status_last_seen"),
            models.Index(fields=["service", "-last_seen"], name="alert_service_last_seen"),
            # Grouping by time window: the newest alert of this service routed by this rule,
            # or by none, that is in an incident, walked to newest first without sorting
            # however many alerts the service has and without reading those in none (a
            # flood of recorded-only warnings made every paging alert's lookup read all of
            # them). One index for each shape, so each lookup's order is its index's order
            # whatever the planner's statistics say (see alerting.services._join_sql).
            models.Index(
                fields=["service", "-last_seen"],
                condition=Q(incident__isnull=False, rule__isnull=True),
                name="alert_service_default_incident",
            ),
            models.Index(
                fields=["service", "rule", "-last_seen"],
                condition=Q(incident__isnull=False, rule__isnull=False),
                name="alert_service_ruled_incident",
            ),
            # For deleting a rule or a user (SET NULL): most alerts have neither.
            models.Index(fields=["rule"], condition=Q(rule__isnull=False), name="alert_rule"),
            models.Index(
                fields=["acknowledged_by"],
                condition=Q(acknowledged_by__isnull=False),
                name="alert_acknowledged_by",
            ),
            # Grouping by Alertmanager group has its own index on PostgreSQL, made by
            # migration 0015: (integration, md5(group_key), -last_seen) over open alerts with
            # a group. On md5 because a long multibyte key could exceed what one B-tree entry
            # may hold; SQLite (one user, embedded) does without.
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status != AlertStatus.RESOLVED


class AlertArrival(models.Model):
    """An alert that joined an incident during a burst and is not yet named on its
    timeline: the burst's arrivals are written as one entry a few seconds on (see
    alerting.services). Written by the statement that attaches the alert, deleted by the
    gathering that names it.

    Its own narrow table, not a flag on the alert: clearing a flag rewrote each alert of a
    storm once more, a new version of a wide row in every one of its indexes. No
    foreign-key constraints in the database: the row is written in the same statement as
    the alert it names (nothing to check) and Django's delete cascades remove it.
    """

    alert = models.OneToOneField(
        Alert, on_delete=models.CASCADE, primary_key=True, db_constraint=False, related_name="+"
    )
    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    # Set by the database: the statements that write arrivals name only the two ids.
    arrived_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"alert {self.alert_id} arriving on incident {self.incident_id}"


class RuleAction(models.TextChoices):
    OPEN = "open", "Open or join an incident"
    RECORD = "record", "Record the alert only"


class RuleGrouping(models.TextChoices):
    GROUP_KEY = "group_key", "Same Alertmanager group joins one incident"
    WINDOW = "window", "Alerts within a time window join one incident"
    NONE = "none", "Every alert opens its own incident"


class AlertRule(models.Model):
    """What a new alert on a service does. A service's rules are tried in `position`
    order and the first whose matchers all hold decides; with no rules the default
    applies (critical and error open an incident, warning and info are recorded).

    `matchers` is a list of {"field", "op", "value"} written by
    `incidents.alerting.matchers` (which also checks and evaluates them).
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="alert_rules")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100, blank=True)
    matchers = models.JSONField(default=list, blank=True)
    action = models.CharField(max_length=10, choices=RuleAction.choices, default=RuleAction.OPEN)
    severity = models.ForeignKey(
        Severity, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grouping = models.CharField(
        max_length=10, choices=RuleGrouping.choices, default=RuleGrouping.GROUP_KEY
    )
    # Null: ALERT_GROUPING_WINDOW_MINUTES.
    window_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    auto_resolve = models.BooleanField(
        default=False, help_text="Resolve the incident when all of its alerts have resolved."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service", "position", "pk"]

    def __str__(self) -> str:
        return self.name or f"Rule {self.position + 1} on {self.service}"


class MaintenanceWindow(models.Model):
    """A planned spell in which a service's alerts are recorded but open nothing."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="maintenance_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["service", "ends_at"], name="maintenance_service_end")]

    def __str__(self) -> str:
        return f"Maintenance on {self.service}: {self.reason}"

    def is_active_at(self, at) -> bool:
        return self.cancelled_at is None and self.starts_at <= at < self.ends_at


# Models kept in their own modules but belonging to this app (and its migrations).
from incidents.alerting.heartbeat_models import *  # noqa: E402, F401, F403
from incidents.statuspages.models import *  # noqa: E402, F401, F403
from incidents.statuspages.subscriber_models import *  # noqa: E402, F401, F403
