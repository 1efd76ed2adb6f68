"""Incidents page people through oncall's escalations.

oncall knows nothing of incidents: an escalation carries `subject_key` "incident:<pk>", and
oncall's signals come back here to be written on the incident's timeline.
"""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse

from incidents.models import Incident, TimelineKind
from incidents.services import IncidentRefused, _lock, _name, timeline_record
from oncall import services as oncall
from oncall.models import Escalation, EscalationPolicy, Schedule, User

SUBJECT_PREFIX = "incident:"


def subject_key(incident: Incident) -> str:
    return f"{SUBJECT_PREFIX}{incident.pk}"


def incident_from_subject(key: str) -> Incident | None:
    if not key.startswith(SUBJECT_PREFIX):
        return None
    return Incident.objects.filter(pk=int(key.removeprefix(SUBJECT_PREFIX))).first()


def _page_title(incident: Incident) -> str:
    return f"[{incident.severity.name}] {incident.reference} {incident.title}"


def _link(incident: Incident) -> str:
    return reverse("incidents:detail", kwargs={"pk": incident.pk})


def _start(*, incident: Incident, actor, policy=None, snapshot=None) -> Escalation:
    """Start an escalation about this incident. Caller holds the incident's row lock."""
    return oncall.escalation_start(
        subject_key=subject_key(incident),
        title=_page_title(incident),
        summary=incident.summary,
        link_url=_link(incident),
        policy=policy,
        snapshot=snapshot,
        started_by=actor,
    )


def incident_paging_start(*, incident: Incident, actor) -> list[Escalation]:
    """Page the escalation policy of every affected service (each policy once).

    Call inside the declaring transaction, holding the incident's row lock.
    """
    policies = (
        EscalationPolicy.objects.filter(services__in=incident.services.all())
        .distinct()
        .order_by("name")
    )
    started = []
    for policy in policies:
        started.append(_start(incident=incident, actor=actor, policy=policy))
        timeline_record(
            incident=incident,
            kind=TimelineKind.PAGING,
            actor=actor,
            body=f"Paging {policy.name} (the escalation policy of an affected service).",
            data={"policy": policy.pk},
        )
    return started


def incident_page(
    *, incident: Incident, actor, user=None, schedule=None, policy=None
) -> Escalation:
    """Page one person, whoever is on call on a schedule, or a whole policy into this
    running incident."""
    with transaction.atomic():
        incident = _lock(incident)
        if not incident.is_open:
            raise IncidentRefused("Only an open incident pages people.")
        if user is not None:
            snapshot = oncall.direct_snapshot(kind="user", target_id=user.pk, name=_name(user))
            what = _name(user)
        elif schedule is not None:
            snapshot = oncall.direct_snapshot(
                kind="schedule", target_id=schedule.pk, name=schedule.name
            )
            what = f"whoever is on call for {schedule.name}"
        elif policy is not None:
            snapshot = oncall.policy_snapshot(policy)
            what = f"the {policy.name} escalation policy"
        else:
            raise IncidentRefused("Choose a person, a schedule or an escalation policy to page.")
        escalation = _start(incident=incident, actor=actor, policy=policy, snapshot=snapshot)
        timeline_record(
            incident=incident,
            kind=TimelineKind.PAGING,
            actor=actor,
            body=f"{_name(actor)} paged {what}.",
            data={"escalation": escalation.pk},
        )
    return escalation


def incident_page_acknowledge(*, incident: Incident, actor, escalation_id: int) -> Escalation:
    escalation = Escalation.objects.filter(
        pk=escalation_id, subject_key=subject_key(incident)
    ).first()
    if escalation is None:
        raise IncidentRefused("That page is not part of this incident.")
    try:
        return oncall.escalation_acknowledge(escalation=escalation, user=actor, via="incident page")
    except oncall.PagingRefused as refused:
        raise IncidentRefused(str(refused)) from None


def incident_paging_stop(*, incident: Incident) -> int:
    return oncall.escalations_resolve(subject_key=subject_key(incident))


# --- What oncall reports back ------------------------------------------------------------


def _record(key: str, *, actor_id=None, body: str, data: dict, acknowledge: bool = False):
    incident = incident_from_subject(key)
    if incident is None:
        return
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    with transaction.atomic():
        incident = _lock(incident)
        if acknowledge and incident.acknowledged_at is None:
            from django.utils import timezone

            incident.acknowledged_at = timezone.now()
            incident.save()
        timeline_record(
            incident=incident, kind=TimelineKind.PAGING, actor=actor, body=body, data=data
        )


def on_escalation_event(sender, *, kind: str, subject_key: str, **info) -> None:
    user = User.objects.filter(pk=info.get("user_id")).first() if info.get("user_id") else None
    who = _name(user) if user else "someone"
    if kind == "paged":
        _record(subject_key, body=f"Paged {who} ({info.get('reason')}).", data={"user": user.pk})
    elif kind == "unreachable":
        _record(
            subject_key,
            body=f"Could not page {who}: no working contact method.",
            data={"user": user.pk if user else None, "unreachable": True},
        )
    elif kind == "acknowledged":
        _record(
            subject_key,
            actor_id=info.get("user_id"),
            body=f"{who} acknowledged the page (from the {info.get('via')}). Escalation stopped.",
            data={"user": info.get("user_id"), "acknowledged": True},
            acknowledge=True,
        )
    elif kind == "nobody":
        _record(
            subject_key,
            body=f"Step {info.get('step_index', 0) + 1} of the escalation found nobody on call "
            "(a gap in the schedule); it moves on to the next step.",
            data={"nobody": True, "step": info.get("step_index")},
        )
    elif kind == "exhausted":
        _record(
            subject_key,
            body="Nobody acknowledged the page after every step and repeat of its policy.",
            data={"exhausted": True},
        )


def on_notification_event(sender, *, kind: str, subject_key: str, **info) -> None:
    user = User.objects.filter(pk=info.get("user_id")).first()
    who = _name(user) if user else "someone"
    method = info.get("method", "")
    text = {
        "sent": f"{method} to {who}: delivered.",
        "retrying": f"{method} to {who} failed, retrying: {info.get('detail')}",
        "failed": f"{method} to {who} failed: {info.get('detail')}",
        "throttled": f"{method} to {who} held back by the storm limit; it will be bundled.",
    }[kind]
    _record(subject_key, body=text, data={"user": info.get("user_id"), "delivery": kind})


def schedules_for_paging():
    return Schedule.objects.order_by("name")
