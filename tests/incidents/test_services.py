from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents import services
from incidents.models import (
    IncidentRole,
    IncidentStatus,
    RoleAssignment,
    TimelineEntry,
    TimelineKind,
)
from incidents.permissions import incident_can_respond, incident_can_view
from tests.factories import make_incident, severity

pytestmark = pytest.mark.django_db


def kinds(incident):
    return list(incident.timeline.order_by("pk").values_list("kind", flat=True))


def test_declaring_makes_the_declarer_commander_and_records_it(commander, make_service):
    checkout = make_service("Checkout")
    incident = make_incident(declared_by=commander, services_=[checkout], severity_name="SEV1")

    assert incident.status == IncidentStatus.INVESTIGATING
    assert list(incident.services.all()) == [checkout]
    holder = incident.roles.get(role=IncidentRole.COMMANDER, relieved_at__isnull=True)
    assert holder.user == commander
    assert kinds(incident) == [TimelineKind.DECLARED, TimelineKind.ROLE]
    assert incident.detected_at and incident.acknowledged_at and incident.impact_started_at
    # SEV1 cadence is 30 minutes
    assert incident.next_update_due_at - incident.declared_at == timedelta(minutes=30)


def test_declaring_for_someone_else_makes_them_commander_with_access(commander, viewer):
    incident = make_incident(declared_by=commander, commander=viewer, restricted=True)
    assert incident.roles.get(role=IncidentRole.COMMANDER).user == viewer
    assert incident_can_view(viewer, incident)
    assert incident_can_respond(viewer, incident)


def test_transitions_stamp_milestones_once(incident, commander):
    services.incident_transition(incident=incident, actor=commander, to_status="identified")
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="monitoring"
    )
    mitigated = incident.mitigated_at
    assert mitigated is not None
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="resolved"
    )
    assert incident.resolved_at is not None
    assert incident.mitigated_at == mitigated
    assert incident.next_update_due_at is None
    entries = incident.timeline.filter(kind=TimelineKind.STATUS).order_by("pk")
    assert [e.data["to"] for e in entries] == ["identified", "monitoring", "resolved"]
    assert "Resolved" in entries.last().body


def test_resolving_straight_from_investigating_stamps_mitigated_too(incident, commander):
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="resolved"
    )
    assert incident.mitigated_at == incident.resolved_at


@pytest.mark.parametrize(
    ("path", "refused", "reason"),
    [
        ([], "closed", "cannot move straight to closed"),
        ([], "investigating", "already investigating"),
        (["resolved", "closed"], "investigating", "closed incident cannot change"),
        (["identified"], "identified", "already identified"),
    ],
)
def test_impossible_transitions_are_refused_with_a_reason(
    incident, commander, path, refused, reason
):
    for status in path:
        incident = services.incident_transition(
            incident=incident, actor=commander, to_status=status
        )
    before = incident.timeline.count()
    with pytest.raises(services.IncidentRefused, match=reason):
        services.incident_transition(incident=incident, actor=commander, to_status=refused)
    assert incident.timeline.count() == before


def test_reopening_clears_resolved_and_restarts_update_cadence(incident, commander):
    services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="investigating"
    )
    assert incident.resolved_at is None
    assert incident.next_update_due_at is not None


def test_a_failed_fix_clears_mitigated(incident, commander):
    services.incident_transition(incident=incident, actor=commander, to_status="monitoring")
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="investigating"
    )
    assert incident.mitigated_at is None


def test_severity_upgrade_and_downgrade_are_recorded(incident, commander):
    services.incident_change_severity(
        incident=incident, actor=commander, severity=severity("SEV1"), reason="all EU down"
    )
    services.incident_change_severity(incident=incident, actor=commander, severity=severity("SEV3"))
    entries = list(incident.timeline.filter(kind=TimelineKind.SEVERITY).order_by("pk"))
    assert [e.data["direction"] for e in entries] == ["upgraded", "downgraded"]
    assert "Reason: all EU down" in entries[0].body
    with pytest.raises(services.IncidentRefused):
        services.incident_change_severity(
            incident=incident, actor=commander, severity=severity("SEV3")
        )


def test_upgrading_severity_brings_the_next_update_forward(commander):
    incident = make_incident(declared_by=commander, severity_name="SEV4")  # 240 min cadence
    incident = services.incident_change_severity(
        incident=incident, actor=commander, severity=severity("SEV1")
    )
    assert incident.next_update_due_at - incident.declared_at == timedelta(minutes=30)


def test_milestone_correction_needs_a_reason_and_keeps_order(incident, commander):
    earlier = incident.detected_at - timedelta(minutes=20)
    with pytest.raises(services.IncidentRefused, match="why"):
        services.incident_correct_milestone(
            incident=incident,
            actor=commander,
            milestone="impact_started_at",
            value=earlier,
            reason=" ",
        )
    incident = services.incident_correct_milestone(
        incident=incident,
        actor=commander,
        milestone="impact_started_at",
        value=earlier,
        reason="Graphs show errors from 09:40",
    )
    assert incident.impact_started_at == earlier
    entry = incident.timeline.filter(kind=TimelineKind.MILESTONE).get()
    assert entry.data["correction"] is True and "Graphs show errors" in entry.body
    with pytest.raises(services.IncidentRefused, match="cannot be after"):
        services.incident_correct_milestone(
            incident=incident,
            actor=commander,
            milestone="acknowledged_at",
            value=earlier - timedelta(minutes=1),
            reason="typo",
        )


def test_roles_hand_over_and_one_person_may_hold_several(incident, commander, responder, viewer):
    services.role_assign(incident=incident, actor=commander, user=responder, role="commander")
    services.role_assign(incident=incident, actor=responder, user=responder, role="scribe")
    services.role_assign(
        incident=incident, actor=responder, user=viewer, role="subject_matter_expert"
    )
    services.role_assign(
        incident=incident, actor=responder, user=commander, role="subject_matter_expert"
    )
    active = {(a.role, a.user.username) for a in incident.roles.filter(relieved_at__isnull=True)}
    assert active == {
        ("commander", "raj"),
        ("scribe", "raj"),
        ("subject_matter_expert", "sid"),
        ("subject_matter_expert", "ivy"),
    }
    handover = incident.timeline.filter(kind=TimelineKind.ROLE).order_by("pk")[1]
    assert "handed command" in handover.body
    # A viewer given a role can act on this incident.
    assert incident_can_respond(viewer, incident)


def test_the_commander_cannot_simply_be_removed(incident, commander):
    assignment = incident.roles.get(role="commander")
    with pytest.raises(services.IncidentRefused, match="always has a commander"):
        services.role_relieve(incident=incident, actor=commander, assignment_id=assignment.pk)


def test_the_database_refuses_two_active_commanders(incident, responder):
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleAssignment.objects.create(
            incident=incident, user=responder, role="commander", assigned_at=timezone.now()
        )


def test_tasks_are_checked_off_and_reopened(incident, commander, responder):
    task = services.task_add(incident=incident, actor=commander, title="Roll back", owner=responder)
    services.task_set_done(incident=incident, actor=responder, task_id=task.pk, done=True)
    task.refresh_from_db()
    assert task.is_done and task.done_by == responder
    with pytest.raises(services.IncidentRefused, match="already done"):
        services.task_set_done(incident=incident, actor=responder, task_id=task.pk, done=True)
    services.task_set_done(incident=incident, actor=commander, task_id=task.pk, done=False)
    bodies = list(
        incident.timeline.filter(kind="task").order_by("pk").values_list("body", flat=True)
    )
    assert bodies == [
        "Ivy added a task: “Roll back”, owned by Raj.",
        "Raj completed the task “Roll back”.",
        "Ivy reopened the task “Roll back”.",
    ]


def test_stakeholder_update_restarts_the_cadence(commander):
    incident = make_incident(declared_by=commander, severity_name="SEV1")
    with time_machine.travel(timezone.now() + timedelta(minutes=45)):
        services.stakeholder_update_post(incident=incident, author=commander, body="Still on it.")
        incident.refresh_from_db()
        assert incident.next_update_due_at == incident.last_stakeholder_update_at + timedelta(
            minutes=30
        )
    entry = incident.timeline.get(kind=TimelineKind.UPDATE)
    assert entry.body_html == "<p>Still on it.</p>"


def test_notes_are_sanitised_markdown(incident, responder):
    entry = services.note_add(
        incident=incident,
        author=responder,
        body=(
            "**Found it** <script>alert(1)</script> [x](javascript:alert(1)) "
            "<img src=x onerror=alert(1)>"
        ),
    )
    assert "<strong>Found it</strong>" in entry.body_html
    assert "<script" not in entry.body_html
    assert "javascript:" not in entry.body_html
    assert "onerror" not in entry.body_html


def test_every_change_bumps_the_revision_in_the_same_transaction(incident, commander):
    before = incident.revision
    services.note_add(incident=incident, author=commander, body="one")
    services.task_add(incident=incident, actor=commander, title="two")
    incident.refresh_from_db()
    assert incident.revision == before + 2


def test_a_failing_change_writes_no_timeline_entry(incident, commander, monkeypatch):
    # The update row and the incident are written first; then the timeline write fails.
    # Nothing of the change may remain.
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(TimelineEntry.objects, "create", boom)
    count = TimelineEntry.objects.count()
    with pytest.raises(RuntimeError):
        services.stakeholder_update_post(incident=incident, author=commander, body="hello")
    incident.refresh_from_db()
    assert TimelineEntry.objects.count() == count
    assert incident.stakeholder_updates.count() == 0
    assert incident.last_stakeholder_update_at is None


def test_details_edit_refuses_a_stale_copy_and_shows_the_current_text(
    incident, commander, responder
):
    version = incident.details_version
    services.incident_update_details(
        incident=incident,
        actor=commander,
        title="Checkout down in EU",
        summary="PSP mTLS broken",
        services=incident.services.all(),
        incident_type=None,
        details_version=version,
    )
    with pytest.raises(services.DetailsConflict) as conflict:
        services.incident_update_details(
            incident=incident,
            actor=responder,
            title="Checkout slow",
            summary="mine",
            services=incident.services.all(),
            incident_type=None,
            details_version=version,
        )
    assert conflict.value.current_summary == "PSP mTLS broken"
    assert conflict.value.edited_by == "Ivy"
    assert "Ivy changed the details" in str(conflict.value)
    incident.refresh_from_db()
    assert incident.title == "Checkout down in EU"


def test_restricting_keeps_role_holders_in(incident, commander, responder, viewer):
    services.role_assign(incident=incident, actor=commander, user=responder, role="scribe")
    services.incident_set_restricted(incident=incident, actor=commander, restricted=True)
    incident.refresh_from_db()
    assert incident_can_view(responder, incident)
    assert not incident_can_view(viewer, incident)
    services.incident_share(incident=incident, actor=commander, user=viewer, respond=False)
    assert incident_can_view(viewer, incident)
    assert not incident_can_respond(viewer, incident)


def test_a_stale_details_form_cannot_silently_drop_a_service(
    incident, commander, responder, make_service
):
    search = make_service("Search")
    version = incident.details_version
    both = [*incident.services.all(), search]
    services.incident_update_details(
        incident=incident,
        actor=responder,
        title=incident.title,
        summary="",
        services=both,
        incident_type=None,
        details_version=version,
    )
    with pytest.raises(services.DetailsConflict) as conflict:
        services.incident_update_details(
            incident=incident,
            actor=commander,
            title=incident.title,
            summary="",
            services=both[:1],
            incident_type=None,
            details_version=version,
        )
    assert "Search" in conflict.value.current_services
    assert search in incident.services.all()


def test_titles_are_one_line(commander):
    incident = make_incident(declared_by=commander, title="Checkout\r\nBcc: everyone  down")
    assert incident.title == "Checkout Bcc: everyone down"


def test_reopening_clears_mitigation_so_the_next_one_is_stamped(incident, commander):
    services.incident_transition(incident=incident, actor=commander, to_status="monitoring")
    services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    incident = services.incident_transition(
        incident=incident, actor=commander, to_status="investigating"
    )
    assert incident.mitigated_at is None
    later = timezone.now() + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        incident = services.incident_transition(
            incident=incident, actor=commander, to_status="monitoring"
        )
    assert incident.mitigated_at == later


def test_a_closed_incident_is_final(incident, commander, responder):
    task = services.task_add(incident=incident, actor=commander, title="t")
    sme = services.role_assign(
        incident=incident, actor=commander, user=responder, role="subject_matter_expert"
    )
    services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    services.incident_transition(incident=incident, actor=commander, to_status="closed")
    for change in (
        lambda: services.task_add(incident=incident, actor=commander, title="late"),
        lambda: services.task_set_done(
            incident=incident, actor=commander, task_id=task.pk, done=True
        ),
        lambda: services.role_relieve(incident=incident, actor=commander, assignment_id=sme.pk),
        lambda: services.role_assign(
            incident=incident, actor=commander, user=commander, role="scribe"
        ),
        lambda: services.incident_transition(
            incident=incident, actor=commander, to_status="investigating"
        ),
    ):
        with pytest.raises(services.IncidentRefused):
            change()


def test_access_can_be_narrowed_and_removed(restricted_incident, commander, viewer, responder):
    services.incident_share(
        incident=restricted_incident, actor=commander, user=viewer, respond=True
    )
    assert incident_can_respond(viewer, restricted_incident)
    services.incident_share(
        incident=restricted_incident, actor=commander, user=viewer, respond=False
    )
    assert incident_can_view(viewer, restricted_incident)
    assert not incident_can_respond(viewer, restricted_incident)
    services.incident_unshare(incident=restricted_incident, actor=commander, user=viewer)
    assert not incident_can_view(viewer, restricted_incident)
    assert "removed Sid's access" in restricted_incident.timeline.first().body
    services.role_assign(
        incident=restricted_incident, actor=commander, user=responder, role="scribe"
    )
    with pytest.raises(services.IncidentRefused, match="relieve them first"):
        services.incident_unshare(incident=restricted_incident, actor=commander, user=responder)


def test_incident_command_keeps_working_when_the_cache_is_down(incident, commander, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    # (Changing settings.CACHES makes Django rebuild its cache handlers.)
    services.note_add(incident=incident, author=commander, body="Redis is down, we carry on")
    services.incident_transition(incident=incident, actor=commander, to_status="identified")
    assert incident_can_view(commander, incident)
    from incidents.selectors import incident_poll_state

    assert incident_poll_state(pk=incident.pk)[1] == incident.timeline.count()
