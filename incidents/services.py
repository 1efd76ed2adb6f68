"""Every write to an incident.

Each public function locks the incident row (SELECT ... FOR NO KEY UPDATE), re-checks state
against the locked row, changes it, and writes the timeline entry in the same transaction.
Two commanders acting at once are therefore serialised: the second sees the first's
change and either builds on it or is refused with a reason. Nothing else writes to
incidents, so the timeline is a complete audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.html import escape

from incidents.markdown import render_markdown
from incidents.models import (
    ALLOWED_TRANSITIONS,
    OPEN_STATUSES,
    SINGLE_HOLDER_ROLES,
    DetectionSource,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentTask,
    IncidentType,
    Milestone,
    RoleAssignment,
    Service,
    Severity,
    StakeholderUpdate,
    StakeholderUpdateReminder,
    TimelineEntry,
    TimelineKind,
)
from incidents.permissions import (
    incident_grant_access,
    incident_people_with_access,
    incident_revoke_access,
)
from incidents.selectors import incident_poll_state_forget
from incidents.signals import incident_status_changed


class IncidentRefused(Exception):
    """A change that the incident's current state does not allow; the message says why."""


class DetailsConflict(Exception):
    """Someone else edited the details since this form was loaded."""

    def __init__(
        self, *, current_title: str, current_summary: str, current_services: str, edited_by: str
    ):
        super().__init__(f"{edited_by} changed the details meanwhile.")
        self.current_title = current_title
        self.current_summary = current_summary
        self.current_services = current_services
        self.edited_by = edited_by


def _now() -> datetime:
    return timezone.now()


def _lock(incident: Incident) -> Incident:
    # FOR NO KEY UPDATE: writers of one incident still queue on each other, but rows that
    # merely point at it (alerts, timeline entries, whose foreign-key checks share-lock
    # it) are never held up, which also keeps intake free of lock-order deadlocks.
    return Incident.objects.select_for_update(no_key=True).get(pk=incident.pk)


def _name(user) -> str:
    return user.display_name if user is not None else "Firebreak"


def _one_line(text: str) -> str:
    """Titles go into email subjects and page headings: one line, single spaces."""
    return " ".join(text.split())


def _utc(value: datetime | None) -> str:
    """Times written into timeline text (read in exports and emails); pages show `data`
    in the viewer's own zone instead."""
    if value is None:
        return "unset"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def timeline_record(
    *,
    incident: Incident,
    kind: str,
    actor,
    body: str,
    markdown: bool = False,
    data: dict | None = None,
    at: datetime | None = None,
) -> TimelineEntry:
    """Write one entry and bump the incident's revision.

    Call while holding the incident's row lock (_lock; every service here does).
    """
    at = at or _now()
    entry = TimelineEntry.objects.create(
        incident=incident,
        kind=kind,
        actor=actor,
        occurred_at=at,
        body=body,
        body_html=render_markdown(body) if markdown else escape(body),
        data=data or {},
    )
    _bump_revision(incident)
    return entry


def _bump_revision(incident: Incident) -> None:
    incident.revision += 1
    incident.save(update_fields=["revision", "updated_at"])
    # Forget now and again on commit: a poll between the two may have cached the old
    # revision from a snapshot taken before this transaction committed.
    incident_id = incident.pk
    incident_poll_state_forget(incident_id)
    transaction.on_commit(lambda: incident_poll_state_forget(incident_id))


def _grant_role_access(incident: Incident, user) -> None:
    # Someone given a role must be able to act on this incident, restricted or not.
    incident_grant_access(incident=incident, user=user, respond=True)


def incident_declare(
    *,
    declared_by,
    title: str,
    severity: Severity,
    detection_source: str,
    services: Iterable[Service] = (),
    incident_type: IncidentType | None = None,
    restricted: bool = False,
    commander=None,
    summary: str = "",
    impact_started_at: datetime | None = None,
    is_drill: bool = False,
    page: bool = True,
) -> Incident:
    """Open an incident. The declarer commands it unless another commander is named.

    A person declaring by hand is already working on it, so it is acknowledged at once.
    """
    now = _now()
    commander = commander or declared_by
    services = list(services)
    with transaction.atomic():
        incident = Incident.objects.create(
            title=_one_line(title),
            summary=summary.strip(),
            severity=severity,
            incident_type=incident_type,
            detection_source=detection_source,
            restricted=restricted,
            is_drill=is_drill,
            declared_by=declared_by,
            declared_at=now,
            impact_started_at=impact_started_at or now,
            detected_at=now,
            acknowledged_at=now if declared_by is not None else None,
            cadence_started_at=now,
            next_update_due_at=now + severity.update_cadence,
        )
        incident.services.set(services)
        source = DetectionSource(detection_source).label.lower()
        timeline_record(
            incident=incident,
            kind=TimelineKind.DECLARED,
            actor=declared_by,
            body=f"{_name(declared_by)} declared a {severity.name} incident ({source}).",
            data={"severity": severity.name, "detection_source": detection_source},
            at=now,
        )
        if declared_by is not None:
            incident_grant_access(incident=incident, user=declared_by, respond=True)
        if commander is not None:
            _assign(incident, actor=declared_by, user=commander, role=IncidentRole.COMMANDER)
        if page:
            from incidents.paging import incident_paging_start

            incident_paging_start(incident=incident, actor=declared_by)
    return incident


def incident_transition(
    *, incident: Incident, actor, to_status: str, expected_status: str | None = None
) -> Incident:
    """Move the incident along its lifecycle, stamping milestones. Refuses impossible moves.

    `expected_status` is the status the actor was looking at: if someone else moved the
    incident meanwhile, the click is refused rather than applied to a state they never saw.
    """
    if to_status not in IncidentStatus.values:
        raise IncidentRefused(f"“{to_status}” is not a status.")
    with transaction.atomic():
        incident = _lock(incident)
        current = incident.status
        target_label = IncidentStatus(to_status).label
        if expected_status and expected_status != current:
            raise IncidentRefused(
                f"Someone else changed the status to {IncidentStatus(current).label.lower()} "
                "while you were looking. Check the incident, then choose again."
            )
        if current == to_status:
            raise IncidentRefused(f"The incident is already {target_label.lower()}.")
        if to_status not in ALLOWED_TRANSITIONS[current]:
            if current == IncidentStatus.CLOSED:
                raise IncidentRefused("A closed incident cannot change status.")
            raise IncidentRefused(
                f"An incident that is {IncidentStatus(current).label.lower()} cannot move "
                f"straight to {target_label.lower()}."
            )
        now = _now()
        stamped: list[str] = []

        def stamp(milestone: Milestone) -> None:
            if getattr(incident, milestone.value) is None:
                setattr(incident, milestone.value, now)
                stamped.append(milestone.label)

        if to_status in (IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING):
            stamp(Milestone.ACKNOWLEDGED)
        if to_status == IncidentStatus.MONITORING:
            stamp(Milestone.MITIGATED)
        if to_status == IncidentStatus.RESOLVED:
            stamp(Milestone.ACKNOWLEDGED)
            stamp(Milestone.MITIGATED)
            stamp(Milestone.RESOLVED)
            incident.next_update_due_at = None
        if to_status == IncidentStatus.CLOSED:
            incident.closed_at = now
        if current == IncidentStatus.RESOLVED and to_status in OPEN_STATUSES:
            # Reopened: it is not resolved any more, and stakeholders need updates again.
            incident.resolved_at = None
            incident.cadence_started_at = now
            incident.next_update_due_at = now + incident.severity.update_cadence
        if to_status in (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED):
            # Back to working on it: whatever mitigation there was did not hold, and the
            # next real mitigation must be stamped (MTTM would lie otherwise).
            incident.mitigated_at = None
        incident.status = to_status
        incident.save()
        body = (
            f"{_name(actor)} changed the status from {IncidentStatus(current).label} "
            f"to {target_label}."
        )
        if stamped:
            body += " Milestones recorded: " + ", ".join(stamped) + "."
        timeline_record(
            incident=incident,
            kind=TimelineKind.STATUS,
            actor=actor,
            body=body,
            data={"from": current, "to": to_status, "milestones": stamped},
            at=now,
        )
        if to_status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
            from incidents.paging import incident_paging_stop

            incident_paging_stop(incident=incident)  # resolving stops every page
        incident_id, actor_id = incident.pk, getattr(actor, "pk", None)
        # robust: a failing receiver in an upper layer never turns a committed status
        # change into an error page; their own sweeps catch up.
        transaction.on_commit(
            lambda: incident_status_changed.send_robust(
                sender=Incident,
                incident_id=incident_id,
                from_status=current,
                to_status=to_status,
                actor_id=actor_id,
            ),
            robust=True,
        )
    return incident


def incident_acknowledge(*, incident: Incident, actor) -> Incident:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.acknowledged_at is not None:
            raise IncidentRefused("The incident is already acknowledged.")
        incident.acknowledged_at = _now()
        incident.save()
        timeline_record(
            incident=incident,
            kind=TimelineKind.MILESTONE,
            actor=actor,
            body=f"{_name(actor)} acknowledged the incident.",
            data={"milestone": Milestone.ACKNOWLEDGED.value},
        )
    return incident


def incident_change_severity(
    *,
    incident: Incident,
    actor,
    severity: Severity,
    reason: str = "",
    expected_severity_id: int | None = None,
) -> Incident:
    """Upgrade or downgrade. `expected_severity_id` is the severity the actor saw: a change
    made meanwhile by someone else is never silently reverted."""
    with transaction.atomic():
        incident = _lock(incident)
        old = incident.severity
        if expected_severity_id and expected_severity_id != old.pk:
            raise IncidentRefused(
                f"Someone else changed the severity to {old.name} while you were looking. "
                "Check it, then change it again if you still need to."
            )
        if old.pk == severity.pk:
            raise IncidentRefused(f"The incident is already {severity.name}.")
        if not incident.is_open:
            raise IncidentRefused("Only an open incident's severity can change.")
        direction = "upgraded" if severity.level < old.level else "downgraded"
        incident.severity = severity
        if incident.next_update_due_at is not None:
            # A more severe incident needs updates sooner; never push a due update later.
            base = incident.cadence_started_at or incident.declared_at
            incident.next_update_due_at = min(
                incident.next_update_due_at, base + severity.update_cadence
            )
        incident.save()
        body = f"{_name(actor)} {direction} the severity from {old.name} to {severity.name}."
        if reason.strip():
            body += f" Reason: {reason.strip()}"
        timeline_record(
            incident=incident,
            kind=TimelineKind.SEVERITY,
            actor=actor,
            body=body,
            data={"from": old.name, "to": severity.name, "direction": direction},
        )
    return incident


def incident_correct_milestone(
    *, incident: Incident, actor, milestone: str, value: datetime, reason: str
) -> Incident:
    """Correct a milestone timestamp after the fact. A reason is required for the record."""
    milestone_enum = Milestone(milestone)
    if not reason.strip():
        raise IncidentRefused("Say why the milestone is being corrected.")
    if value > _now() + timedelta(minutes=1):
        raise IncidentRefused("A milestone cannot be in the future.")
    with transaction.atomic():
        incident = _lock(incident)
        old = getattr(incident, milestone)
        if milestone == Milestone.RESOLVED and incident.status not in (
            IncidentStatus.RESOLVED,
            IncidentStatus.CLOSED,
        ):
            raise IncidentRefused("An open incident has no resolved time to correct.")
        order = [m.value for m in Milestone]
        after = {m: getattr(incident, m) for m in order}
        after[milestone] = value
        stamps = [(m, after[m]) for m in order if after[m] is not None]
        for (m1, t1), (m2, t2) in zip(stamps, stamps[1:], strict=False):
            if t1 > t2:
                raise IncidentRefused(
                    f"{Milestone(m1).label} cannot be after {Milestone(m2).label.lower()}."
                )
        setattr(incident, milestone, value)
        incident.save()
        timeline_record(
            incident=incident,
            kind=TimelineKind.MILESTONE,
            actor=actor,
            body=(
                f"{_name(actor)} corrected “{milestone_enum.label}” "
                f"from {_utc(old)} to {_utc(value)}. Reason: {reason.strip()}"
            ),
            data={
                "milestone": milestone,
                "from": old.isoformat() if old else None,
                "to": value.isoformat(),
                "reason": reason.strip(),
                "label": milestone_enum.label,
                "correction": True,
            },
        )
    return incident


def incident_update_details(
    *,
    incident: Incident,
    actor,
    title: str,
    summary: str,
    services: Iterable[Service],
    incident_type: IncidentType | None,
    details_version: int,
) -> Incident:
    """Edit title, summary, services and type, guarded by `details_version`: a second
    editor working from an older copy is refused and shown the current values, so neither
    edit is silently lost."""
    services = list(services)
    title = _one_line(title)
    summary = summary.strip()
    with transaction.atomic():
        incident = _lock(incident)
        old_services = set(incident.services.values_list("pk", flat=True))
        new_services = {s.pk for s in services}
        new_type_id = incident_type.pk if incident_type else None
        changes: list[str] = []
        if title != incident.title:
            changes.append(f"title to “{title}”")
        if summary != incident.summary:
            changes.append("the summary")
        if old_services != new_services:
            names = ", ".join(sorted(s.name for s in services)) or "none"
            changes.append(f"affected services to {names}")
        if incident.incident_type_id != new_type_id:
            changes.append(f"type to {incident_type.name if incident_type else 'none'}")
        if not changes:
            return incident
        if incident.details_version != details_version:
            last = (
                incident.timeline.filter(kind=TimelineKind.DETAILS).select_related("actor").first()
            )
            raise DetailsConflict(
                current_title=incident.title,
                current_summary=incident.summary,
                current_services=", ".join(
                    incident.services.order_by("name").values_list("name", flat=True)
                )
                or "none",
                edited_by=_name(last.actor) if last else "someone",
            )
        incident.title = title
        incident.summary = summary
        incident.incident_type = incident_type
        incident.details_version += 1
        incident.save()
        if old_services != new_services:
            incident.services.set(services)
        timeline_record(
            incident=incident,
            kind=TimelineKind.DETAILS,
            actor=actor,
            body=f"{_name(actor)} changed " + "; ".join(changes) + ".",
        )
    return incident


def incident_set_restricted(*, incident: Incident, actor, restricted: bool) -> Incident:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.restricted == restricted:
            raise IncidentRefused(
                "The incident is already restricted." if restricted else "It is not restricted."
            )
        incident.restricted = restricted
        incident.save()
        if restricted:
            # Everyone currently holding a role keeps access; the actor too.
            for assignment in incident.roles.filter(relieved_at__isnull=True).select_related(
                "user"
            ):
                _grant_role_access(incident, assignment.user)
            incident_grant_access(incident=incident, user=actor, respond=True)
        timeline_record(
            incident=incident,
            kind=TimelineKind.ACCESS,
            actor=actor,
            body=(
                f"{_name(actor)} restricted the incident to people granted access."
                if restricted
                else f"{_name(actor)} lifted the restriction: everyone with access to "
                "incidents can now see it."
            ),
        )
    return incident


def incident_share(*, incident: Incident, actor, user, respond: bool) -> Incident:
    """Grant one person access to a (restricted) incident, exactly as asked: sharing
    read-only with someone who could respond takes the respond permission away."""
    with transaction.atomic():
        incident = _lock(incident)
        incident_revoke_access(incident=incident, user=user)
        incident_grant_access(incident=incident, user=user, respond=respond)
        timeline_record(
            incident=incident,
            kind=TimelineKind.ACCESS,
            actor=actor,
            body=f"{_name(actor)} gave {_name(user)} access "
            f"({'can respond' if respond else 'read only'}).",
            data={"user": user.pk, "respond": respond},
        )
    return incident


def incident_unshare(*, incident: Incident, actor, user) -> Incident:
    """Take one person's access to this incident away. Current role holders keep theirs:
    relieve them first."""
    with transaction.atomic():
        incident = _lock(incident)
        if incident.roles.filter(user=user, relieved_at__isnull=True).exists():
            raise IncidentRefused(
                f"{_name(user)} holds a role on this incident: relieve them first."
            )
        if user.pk not in {p.pk for p in incident_people_with_access(incident=incident)}:
            raise IncidentRefused(f"{_name(user)} has no access of their own to remove.")
        incident_revoke_access(incident=incident, user=user)
        timeline_record(
            incident=incident,
            kind=TimelineKind.ACCESS,
            actor=actor,
            body=f"{_name(actor)} removed {_name(user)}'s access.",
            data={"user": user.pk, "revoked": True},
        )
    return incident


def _assign(incident: Incident, *, actor, user, role: str) -> RoleAssignment:
    now = _now()
    current = list(
        incident.roles.filter(role=role, relieved_at__isnull=True).select_related("user")
    )
    if any(a.user_id == user.pk for a in current):
        raise IncidentRefused(f"{_name(user)} is already {IncidentRole(role).label.lower()}.")
    label = IncidentRole(role).label
    if actor is not None and actor.pk == user.pk:
        body = (
            f"{_name(user)} took command."
            if role == IncidentRole.COMMANDER
            else f"{_name(user)} took the {label.lower()} role."
        )
    else:
        body = f"{_name(actor)} made {_name(user)} {label.lower()}."
    if role in SINGLE_HOLDER_ROLES and current:
        previous = current[0]
        previous.relieved_at = now
        previous.save(update_fields=["relieved_at"])
        if role == IncidentRole.COMMANDER:
            body = f"{_name(previous.user)} handed command to {_name(user)}."
            if actor is not None and actor.pk != previous.user_id:
                body = (
                    f"{_name(actor)} handed command from {_name(previous.user)} to {_name(user)}."
                )
        else:
            body = (
                f"{_name(actor)} handed {label.lower()} from {_name(previous.user)} "
                f"to {_name(user)}."
            )
    assignment = RoleAssignment.objects.create(
        incident=incident, user=user, role=role, assigned_at=now, assigned_by=actor
    )
    _grant_role_access(incident, user)
    timeline_record(
        incident=incident,
        kind=TimelineKind.ROLE,
        actor=actor,
        body=body,
        data={"role": role, "user": user.pk},
        at=now,
    )
    return assignment


def role_assign(*, incident: Incident, actor, user, role: str) -> RoleAssignment:
    """Give `user` a role. For single-holder roles this hands it over from the current holder."""
    if role not in IncidentRole.values:
        raise IncidentRefused(f"“{role}” is not an incident role.")
    if not user.is_active:
        raise IncidentRefused(f"{_name(user)} is not an active user.")
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident's roles cannot change.")
        return _assign(incident, actor=actor, user=user, role=role)


def role_relieve(*, incident: Incident, actor, assignment_id: int) -> None:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident is final: reopen work as a follow-up.")
        try:
            assignment = incident.roles.select_related("user").get(
                pk=assignment_id, relieved_at__isnull=True
            )
        except RoleAssignment.DoesNotExist:
            raise IncidentRefused("That person no longer holds that role.") from None
        if assignment.role == IncidentRole.COMMANDER:
            raise IncidentRefused(
                "An incident always has a commander: hand command to someone else instead."
            )
        assignment.relieved_at = _now()
        assignment.save(update_fields=["relieved_at"])
        timeline_record(
            incident=incident,
            kind=TimelineKind.ROLE,
            actor=actor,
            body=f"{_name(actor)} relieved {_name(assignment.user)} as "
            f"{assignment.get_role_display().lower()}.",
            data={"role": assignment.role, "user": assignment.user_id, "relieved": True},
        )


def task_add(*, incident: Incident, actor, title: str, owner=None) -> IncidentTask:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident is final: reopen work as a follow-up.")
        task = IncidentTask.objects.create(
            incident=incident,
            title=title.strip(),
            owner=owner,
            created_by=actor,
            created_at=_now(),
        )
        body = f"{_name(actor)} added a task: “{task.title}”"
        body += f", owned by {_name(owner)}." if owner else "."
        timeline_record(
            incident=incident,
            kind=TimelineKind.TASK,
            actor=actor,
            body=body,
            data={"task": task.pk, "action": "added"},
        )
    return task


def task_set_done(*, incident: Incident, actor, task_id: int, done: bool) -> IncidentTask:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident is final: reopen work as a follow-up.")
        try:
            task = incident.tasks.get(pk=task_id)
        except IncidentTask.DoesNotExist:
            raise IncidentRefused("That task is not on this incident.") from None
        if task.is_done == done:
            raise IncidentRefused(f"“{task.title}” is already {'done' if done else 'open'}.")
        task.done_at = _now() if done else None
        task.done_by = actor if done else None
        task.save(update_fields=["done_at", "done_by"])
        timeline_record(
            incident=incident,
            kind=TimelineKind.TASK,
            actor=actor,
            body=f"{_name(actor)} {'completed' if done else 'reopened'} the task “{task.title}”.",
            data={"task": task.pk, "action": "done" if done else "reopened"},
        )
    return task


def task_assign(*, incident: Incident, actor, task_id: int, owner) -> IncidentTask:
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident is final: reopen work as a follow-up.")
        try:
            task = incident.tasks.get(pk=task_id)
        except IncidentTask.DoesNotExist:
            raise IncidentRefused("That task is not on this incident.") from None
        if task.owner_id == (owner.pk if owner else None):
            raise IncidentRefused("That task already has that owner.")
        task.owner = owner
        task.save(update_fields=["owner"])
        who = _name(owner) if owner else "nobody"
        timeline_record(
            incident=incident,
            kind=TimelineKind.TASK,
            actor=actor,
            body=f"{_name(actor)} gave the task “{task.title}” to {who}.",
            data={"task": task.pk, "action": "assigned"},
        )
    return task


def stakeholder_update_post(*, incident: Incident, author, body: str) -> StakeholderUpdate:
    """Publish an internal stakeholder update and restart the update cadence."""
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident takes no more updates.")
        now = _now()
        update = StakeholderUpdate.objects.create(
            incident=incident,
            author=author,
            body=body.strip(),
            body_html=render_markdown(body.strip()),
            created_at=now,
        )
        incident.last_stakeholder_update_at = now
        incident.cadence_started_at = now
        incident.next_update_due_at = (
            now + incident.severity.update_cadence if incident.is_open else None
        )
        incident.save()
        timeline_record(
            incident=incident,
            kind=TimelineKind.UPDATE,
            actor=author,
            body=body.strip(),
            markdown=True,
            data={"update": update.pk},
            at=now,
        )
    return update


def note_add(*, incident: Incident, author, body: str) -> TimelineEntry:
    with transaction.atomic():
        incident = _lock(incident)
        return timeline_record(
            incident=incident,
            kind=TimelineKind.NOTE,
            actor=author,
            body=body.strip(),
            markdown=True,
        )


def timeline_entry_set_pinned(
    *, incident: Incident, actor, entry_id: int, pinned: bool
) -> TimelineEntry:
    with transaction.atomic():
        incident = _lock(incident)
        try:
            entry = incident.timeline.get(pk=entry_id)
        except TimelineEntry.DoesNotExist:
            raise IncidentRefused("That entry is not on this incident's timeline.") from None
        if entry.pinned != pinned:
            # Pinning edits an entry rather than adding one; bumping the revision still
            # lets everyone watching see the key moments, and the entry, change.
            _bump_revision(incident)
            entry.pinned = pinned
            entry.pin_revision = incident.revision
            entry.save(update_fields=["pinned", "pin_revision"])
    return entry


def stakeholder_update_missed_due(incident: Incident, now: datetime) -> datetime | None:
    """The most recent update due time that has passed without an update, if any."""
    due = incident.next_update_due_at
    if due is None or due > now or not incident.is_open:
        return None
    cadence = incident.severity.update_cadence
    periods = int((now - due) / cadence)
    return due + periods * cadence


REMINDER_CLAIM_TIMEOUT = timedelta(minutes=5)


def stakeholder_update_reminder_due(*, incident_id: int, now: datetime | None = None):
    """Record that the current missed update needs a reminder; return it, or None.

    At most one reminder row exists per missed update (a unique constraint), so any number
    of sweeps, beats or re-delivered tasks agree on it.
    """
    now = now or _now()
    incident = Incident.objects.select_related("severity").filter(pk=incident_id).first()
    if incident is None:
        return None
    missed_due = stakeholder_update_missed_due(incident, now)
    if missed_due is None:
        return None
    holder = (
        incident.roles.filter(role=IncidentRole.COMMUNICATIONS_LEAD, relieved_at__isnull=True)
        .select_related("user")
        .first()
        or incident.roles.filter(role=IncidentRole.COMMANDER, relieved_at__isnull=True)
        .select_related("user")
        .first()
    )
    recipient = holder.user if holder else None
    reminder, _ = StakeholderUpdateReminder.objects.get_or_create(
        incident=incident, missed_due=missed_due, defaults={"recipient": recipient}
    )
    return reminder


def stakeholder_update_reminder_claim(*, reminder_id: int, now: datetime | None = None):
    """Claim a pending reminder for sending (conditional UPDATE). Returns it, or None when
    someone else has it. A claim left by a killed worker expires after
    REMINDER_CLAIM_TIMEOUT and may be taken again."""
    now = now or _now()
    claimable = StakeholderUpdateReminder.objects.filter(
        pk=reminder_id, state=StakeholderUpdateReminder.State.PENDING
    ).filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - REMINDER_CLAIM_TIMEOUT))
    if claimable.update(claimed_at=now, attempts=F("attempts") + 1) != 1:
        return None
    return StakeholderUpdateReminder.objects.select_related("incident__severity", "recipient").get(
        pk=reminder_id
    )


def stakeholder_update_reminder_record(
    *, reminder: StakeholderUpdateReminder, sent: bool, error: str = ""
) -> None:
    """Write what happened, on the reminder and on the incident's timeline, together."""
    recipient = reminder.recipient
    with transaction.atomic():
        incident = _lock(reminder.incident)
        if recipient is None or not recipient.email:
            state = StakeholderUpdateReminder.State.SKIPPED
            outcome = (
                "nobody with an email address holds the communications lead or commander "
                "role to remind."
            )
        elif sent:
            state = StakeholderUpdateReminder.State.SENT
            outcome = f"reminded {_name(recipient)} by email."
        else:
            state = StakeholderUpdateReminder.State.FAILED
            outcome = f"the reminder email to {_name(recipient)} could not be sent ({error})."
        updated = StakeholderUpdateReminder.objects.filter(
            pk=reminder.pk, state=StakeholderUpdateReminder.State.PENDING
        ).update(state=state, sent_at=_now() if sent else None, error=error[:1000])
        if updated != 1:
            return  # recorded already by an earlier attempt
        timeline_record(
            incident=incident,
            kind=TimelineKind.REMINDER,
            actor=None,
            body=f"A stakeholder update was due at {_utc(reminder.missed_due)}; {outcome}",
            data={
                "missed_due": reminder.missed_due.isoformat(),
                "recipient": getattr(recipient, "pk", None),
                "outcome": state,
                "outcome_text": outcome,
            },
        )
