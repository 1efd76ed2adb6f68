"""Every write to postmortems and action items.

Each public function takes keyword arguments, locks the rows it changes
(SELECT ... FOR UPDATE, the incident FOR NO KEY UPDATE; the incident first when the
incident timeline is written, then the postmortem, so two writers never wait on each
other in opposite orders), re-checks state on
the locked row and keeps the history in the same transaction: section revisions, the
postmortem's events, the action item's events and, for what the incident's people care
about (postmortem started and published, follow-ups), the incident timeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from incidents.markdown import render_markdown
from incidents.models import (
    Incident,
    IncidentRole,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
)
from incidents.services import timeline_record
from postmortems.facts import incident_facts
from postmortems.models import (
    ActionItem,
    ActionItemEvent,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemType,
    ExportState,
    Postmortem,
    PostmortemEvent,
    PostmortemExport,
    PostmortemPolicy,
    PostmortemReviewer,
    PostmortemSection,
    PostmortemStatus,
    PostmortemTemplate,
    PostmortemTimelineItem,
    ReviewComment,
    SectionRevision,
)
from postmortems.sections import (
    DEFAULT_SECTIONS,
    DEFAULT_TEMPLATE_NAME,
    initial_bodies,
)

RESOLVED_STATUSES = (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
MAX_TAGS = 12


class PostmortemRefused(Exception):
    """A change the postmortem's (or action item's) current state does not allow."""


@dataclass(frozen=True)
class SectionConflict(Exception):
    """Someone else saved this section since the editor loaded it. Nothing was written."""

    current_body: str
    current_version: int
    edited_by: str
    edited_at: dt.datetime | None


def _now() -> dt.datetime:
    return timezone.now()


def _name(user) -> str:
    return user.display_name if user is not None else "Firebreak"


# --- Policy and due dates ----------------------------------------------------------------


def add_working_days(start: dt.date, days: int) -> dt.date:
    """`days` working days (Monday to Friday) after `start`."""
    current = start
    remaining = days
    while remaining > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def postmortem_policy_for(incident: Incident) -> PostmortemPolicy | None:
    return PostmortemPolicy.objects.filter(severity_id=incident.severity_id).first()


def postmortem_is_required(incident: Incident) -> bool:
    if incident.is_drill or incident.resolved_at is None:
        return False
    policy = postmortem_policy_for(incident)
    return bool(policy and policy.required)


def postmortem_due_date(incident: Incident) -> dt.date | None:
    policy = postmortem_policy_for(incident)
    if policy is None or not policy.required or incident.resolved_at is None:
        return None
    resolved_day = timezone.localtime(incident.resolved_at, dt.UTC).date()
    return add_working_days(resolved_day, policy.due_working_days)


def default_template() -> PostmortemTemplate:
    template = PostmortemTemplate.objects.filter(is_default=True).first()
    if template is None:
        template, _ = PostmortemTemplate.objects.get_or_create(
            name=DEFAULT_TEMPLATE_NAME,
            defaults={"sections": DEFAULT_SECTIONS, "is_default": True},
        )
    return template


def _default_owner(incident: Incident, actor):
    commander = (
        incident.roles.filter(role=IncidentRole.COMMANDER, relieved_at__isnull=True)
        .select_related("user")
        .first()
    )
    if commander is not None:
        return commander.user
    return incident.declared_by or actor


# --- Postmortems -------------------------------------------------------------------------


def _lock_incident(incident_id: int) -> Incident:
    return (
        Incident.objects.select_for_update(no_key=True)
        .select_related("severity")
        .get(pk=incident_id)
    )


def _lock(postmortem: Postmortem) -> Postmortem:
    return Postmortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)


def _event(postmortem: Postmortem, actor, body: str) -> None:
    PostmortemEvent.objects.create(postmortem=postmortem, actor=actor, at=_now(), body=body)


def _changed(postmortem: Postmortem) -> None:
    """Count a change to what the postmortem shows (the PDF cache key)."""
    postmortem.content_version += 1
    postmortem.save()


def _ensure_editable(postmortem: Postmortem) -> None:
    if postmortem.status == PostmortemStatus.PUBLISHED:
        raise PostmortemRefused(
            "This postmortem is published and read-only. Start a new revision to change it."
        )


def postmortem_create(
    *,
    incident: Incident,
    actor,
    owner=None,
    template: PostmortemTemplate | None = None,
) -> Postmortem:
    """Start the postmortem of a resolved (or closed) incident. Idempotent: if it already
    has one, that one is returned unchanged (one postmortem per incident)."""
    with transaction.atomic():
        incident = _lock_incident(incident.pk)
        existing = Postmortem.objects.filter(incident=incident).first()
        if existing is not None:
            return existing
        if incident.status not in RESOLVED_STATUSES:
            raise PostmortemRefused("A postmortem starts once the incident is resolved.")
        template = template or default_template()
        owner = owner or _default_owner(incident, actor)
        now = _now()
        required = postmortem_is_required(incident)
        postmortem = Postmortem.objects.create(
            incident=incident,
            title=incident.title,
            template=template,
            owner=owner,
            required=required,
            due_date=postmortem_due_date(incident),
            created_by=actor,
            created_at=now,
        )
        if owner is not None:
            postmortem.authors.add(owner)
        facts = incident_facts(incident)
        bodies = initial_bodies(incident, facts)
        sections = []
        for position, spec in enumerate(template.sections):
            body = bodies.get(spec["key"], "")
            sections.append(
                PostmortemSection(
                    postmortem=postmortem,
                    key=spec["key"],
                    title=spec["title"],
                    prompt=spec.get("prompt", ""),
                    position=position,
                    body=body,
                    body_html=render_markdown(body) if body else "",
                )
            )
        PostmortemSection.objects.bulk_create(sections)
        # Version 0, the text pre-filled from the incident, so the history starts there.
        SectionRevision.objects.bulk_create(
            SectionRevision(section=s, version=0, body=s.body, edited_by=actor, edited_at=now)
            for s in postmortem.sections.all()
            if s.body
        )
        # Key moments pinned during the incident are the starting timeline.
        pinned = incident.timeline.filter(pinned=True).order_by("occurred_at", "pk")
        PostmortemTimelineItem.objects.bulk_create(
            [_item_from_entry(postmortem, entry, actor) for entry in pinned]
        )
        why = "required by the severity policy" if required else "started by hand"
        _event(postmortem, actor, f"{_name(actor)} started the postmortem ({why}).")
        owner_text = f", owned by {_name(owner)}" if owner else ""
        due_text = f", due {postmortem.due_date:%d %b %Y}" if postmortem.due_date else ""
        timeline_record(
            incident=incident,
            kind=TimelineKind.DETAILS,
            actor=actor,
            body=f"Postmortem started{owner_text}{due_text}.",
            data={"postmortem": postmortem.pk, "action": "created"},
        )
    return postmortem


def postmortem_ensure_required(*, incident_id: int, actor=None) -> Postmortem | None:
    """Create the required postmortem if the policy asks for one and it is missing.
    Safe to call from the status signal and the periodic sweep at the same time."""
    incident = Incident.objects.select_related("severity").filter(pk=incident_id).first()
    if incident is None or incident.status not in RESOLVED_STATUSES:
        return None
    if not postmortem_is_required(incident):
        return None
    try:
        return postmortem_create(incident=incident, actor=actor)
    except IntegrityError:
        # Another process created it between our check and insert (unique incident).
        return Postmortem.objects.filter(incident_id=incident_id).first()


def _item_from_entry(postmortem: Postmortem, entry: TimelineEntry, actor):
    return PostmortemTimelineItem(
        postmortem=postmortem,
        source_entry=entry,
        occurred_at=entry.occurred_at,
        body=entry.body,
        body_html=entry.body_html,
        added_by=actor,
    )


def postmortem_section_save(
    *, postmortem: Postmortem, section_key: str, actor, body: str, base_version: int
) -> PostmortemSection:
    """Save one section's text. `base_version` is the version the editor started from; if
    someone saved since, nothing is written and SectionConflict carries their text."""
    body = body.replace("\r\n", "\n").strip()
    with transaction.atomic():
        postmortem = _lock(postmortem)
        _ensure_editable(postmortem)
        try:
            section = postmortem.sections.select_related("updated_by").get(key=section_key)
        except PostmortemSection.DoesNotExist:
            raise PostmortemRefused("This postmortem has no such section.") from None
        if section.version != base_version:
            raise SectionConflict(
                current_body=section.body,
                current_version=section.version,
                edited_by=_name(section.updated_by),
                edited_at=section.updated_at,
            )
        if body == section.body:
            return section
        now = _now()
        section.body = body
        section.body_html = render_markdown(body) if body else ""
        section.version += 1
        section.updated_by = actor
        section.updated_at = now
        section.save()
        SectionRevision.objects.create(
            section=section, version=section.version, body=body, edited_by=actor, edited_at=now
        )
        if actor is not None and not postmortem.authors.filter(pk=actor.pk).exists():
            postmortem.authors.add(actor)
        _changed(postmortem)
    return section


def postmortem_update_details(
    *,
    postmortem: Postmortem,
    actor,
    title: str,
    owner,
    due_date: dt.date | None,
    tags: Iterable[str],
) -> Postmortem:
    tags = _clean_tags(tags)
    with transaction.atomic():
        postmortem = _lock(postmortem)
        _ensure_editable(postmortem)
        changes = []
        if title.strip() and title.strip() != postmortem.title:
            postmortem.title = title.strip()
            changes.append(f"title to “{postmortem.title}”")
        if (owner.pk if owner else None) != postmortem.owner_id:
            postmortem.owner = owner
            changes.append(f"owner to {_name(owner) if owner else 'nobody'}")
            if owner is not None:
                postmortem.authors.add(owner)
        if due_date != postmortem.due_date:
            postmortem.due_date = due_date
            changes.append(f"due date to {due_date:%d %b %Y}" if due_date else "no due date")
        if tags != postmortem.tags:
            postmortem.tags = tags
            changes.append("tags to " + (", ".join(tags) or "none"))
        if changes:
            _changed(postmortem)
            _event(postmortem, actor, f"{_name(actor)} changed " + "; ".join(changes) + ".")
    return postmortem


def _clean_tags(tags: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        tag = " ".join(tag.strip().lower().split())[:40]
        if tag and tag not in seen:
            seen.append(tag)
    return seen[:MAX_TAGS]


def postmortem_timeline_choose(
    *, postmortem: Postmortem, actor, entry_ids: Iterable[int]
) -> Postmortem:
    """Make the chosen incident entries the postmortem's timeline (entries added
    afterwards are kept). Entry ids from another incident are ignored."""
    wanted = set(entry_ids)
    with transaction.atomic():
        postmortem = _lock(postmortem)
        _ensure_editable(postmortem)
        current = set(
            postmortem.timeline_items.filter(source_entry__isnull=False).values_list(
                "source_entry_id", flat=True
            )
        )
        valid = set(
            TimelineEntry.objects.filter(
                incident_id=postmortem.incident_id, pk__in=wanted
            ).values_list("pk", flat=True)
        )
        removed = current - valid
        added = valid - current
        if removed:
            postmortem.timeline_items.filter(source_entry_id__in=removed).delete()
        if added:
            entries = TimelineEntry.objects.filter(pk__in=added)
            PostmortemTimelineItem.objects.bulk_create(
                [_item_from_entry(postmortem, e, actor) for e in entries]
            )
        if added or removed:
            _changed(postmortem)
    return postmortem


def postmortem_timeline_add(
    *, postmortem: Postmortem, actor, occurred_at: dt.datetime, body: str
) -> PostmortemTimelineItem:
    """Add something found afterwards (a log line, a deploy) to the timeline."""
    body = body.strip()
    if not body:
        raise PostmortemRefused("Say what happened.")
    with transaction.atomic():
        postmortem = _lock(postmortem)
        _ensure_editable(postmortem)
        item = PostmortemTimelineItem.objects.create(
            postmortem=postmortem,
            occurred_at=occurred_at,
            body=body,
            body_html=render_markdown(body),
            added_by=actor,
        )
        _changed(postmortem)
    return item


def postmortem_timeline_remove(*, postmortem: Postmortem, actor, item_id: int) -> None:
    with transaction.atomic():
        postmortem = _lock(postmortem)
        _ensure_editable(postmortem)
        deleted, _ = postmortem.timeline_items.filter(pk=item_id).delete()
        if not deleted:
            raise PostmortemRefused("That entry is not on this postmortem's timeline.")
        _changed(postmortem)


def postmortem_submit_for_review(*, postmortem: Postmortem, actor, reviewers) -> Postmortem:
    reviewers = [r for r in reviewers if r is not None]
    if not reviewers:
        raise PostmortemRefused("Name at least one reviewer.")
    with transaction.atomic():
        postmortem = _lock(postmortem)
        if postmortem.status != PostmortemStatus.DRAFT:
            raise PostmortemRefused("Only a draft can be sent for review.")
        now = _now()
        for user in reviewers:
            PostmortemReviewer.objects.update_or_create(
                postmortem=postmortem,
                user=user,
                defaults={"requested_at": now, "approved_at": None},
            )
        postmortem.status = PostmortemStatus.IN_REVIEW
        postmortem.submitted_at = now
        _changed(postmortem)
        names = ", ".join(_name(u) for u in reviewers)
        _event(postmortem, actor, f"{_name(actor)} asked {names} to review.")
    return postmortem


def postmortem_comment_add(
    *, postmortem: Postmortem, actor, body: str, section_key: str = ""
) -> ReviewComment:
    body = body.strip()
    if not body:
        raise PostmortemRefused("Write a comment first.")
    with transaction.atomic():
        postmortem = _lock(postmortem)
        if postmortem.status == PostmortemStatus.PUBLISHED:
            raise PostmortemRefused(
                "A published postmortem takes no comments. Start a new revision to change it."
            )
        section = None
        if section_key:
            section = postmortem.sections.filter(key=section_key).first()
            if section is None:
                raise PostmortemRefused("This postmortem has no such section.")
        return ReviewComment.objects.create(
            postmortem=postmortem,
            section=section,
            author=actor,
            body=body,
            body_html=render_markdown(body),
            created_at=_now(),
        )


def postmortem_comment_resolve(*, postmortem: Postmortem, actor, comment_id: int) -> None:
    with transaction.atomic():
        postmortem = _lock(postmortem)
        updated = postmortem.comments.filter(pk=comment_id, resolved_at__isnull=True).update(
            resolved_at=_now()
        )
        if not updated:
            raise PostmortemRefused("That comment is already resolved.")


def postmortem_approve(*, postmortem: Postmortem, actor) -> Postmortem:
    with transaction.atomic():
        postmortem = _lock(postmortem)
        if postmortem.status != PostmortemStatus.IN_REVIEW:
            raise PostmortemRefused("Only a postmortem in review can be approved.")
        review = postmortem.reviewers.filter(user=actor).first()
        if review is None:
            raise PostmortemRefused("Only a named reviewer can approve.")
        if review.approved_at is not None:
            raise PostmortemRefused("You have already approved it.")
        review.approved_at = _now()
        review.save(update_fields=["approved_at"])
        _event(postmortem, actor, f"{_name(actor)} approved the postmortem.")
    return postmortem


def postmortem_publish(*, postmortem: Postmortem, actor) -> Postmortem:
    """Publish after review; recorded on the incident timeline. Read-only from here on."""
    with transaction.atomic():
        incident = _lock_incident(postmortem.incident_id)
        postmortem = _lock(postmortem)
        if postmortem.status == PostmortemStatus.PUBLISHED:
            raise PostmortemRefused("It is already published.")
        if postmortem.status != PostmortemStatus.IN_REVIEW:
            raise PostmortemRefused("Send the postmortem for review before publishing it.")
        waiting = [
            _name(r.user)
            for r in postmortem.reviewers.filter(approved_at__isnull=True).select_related("user")
        ]
        if waiting:
            raise PostmortemRefused(
                "Every reviewer must approve before it is published. Waiting for "
                + ", ".join(waiting)
                + "."
            )
        now = _now()
        postmortem.status = PostmortemStatus.PUBLISHED
        postmortem.published_at = now
        postmortem.published_by = actor
        _changed(postmortem)
        revision = (
            f" (revision {postmortem.revision_number})" if postmortem.revision_number > 1 else ""
        )
        _event(postmortem, actor, f"{_name(actor)} published the postmortem{revision}.")
        timeline_record(
            incident=incident,
            kind=TimelineKind.DETAILS,
            actor=actor,
            body=f"Postmortem published{revision} by {_name(actor)}: “{postmortem.title}”.",
            data={
                "postmortem": postmortem.pk,
                "action": "published",
                "revision": postmortem.revision_number,
            },
            at=now,
        )
    return postmortem


def postmortem_start_revision(*, postmortem: Postmortem, actor) -> Postmortem:
    """Reopen a published postmortem as a new revision (a draft again)."""
    with transaction.atomic():
        postmortem = _lock(postmortem)
        if postmortem.status != PostmortemStatus.PUBLISHED:
            raise PostmortemRefused("Only a published postmortem needs a new revision.")
        postmortem.status = PostmortemStatus.DRAFT
        postmortem.revision_number += 1
        postmortem.reviewers.update(approved_at=None)
        _changed(postmortem)
        _event(
            postmortem,
            actor,
            f"{_name(actor)} started revision {postmortem.revision_number}.",
        )
    return postmortem


# --- Action items ------------------------------------------------------------------------


def _item_event(item: ActionItem, actor, body: str) -> None:
    ActionItemEvent.objects.create(item=item, actor=actor, at=_now(), body=body)


def _touch_postmortem(postmortem_id: int | None) -> None:
    # Action items are in the PDF: a change is a change to the postmortem's content.
    if postmortem_id:
        pm = Postmortem.objects.select_for_update().get(pk=postmortem_id)
        _changed(pm)


def action_item_create(
    *,
    incident: Incident,
    actor,
    title: str,
    item_type: str,
    description: str = "",
    owner=None,
    team=None,
    due_date: dt.date | None = None,
    priority: int = ActionItemPriority.P3,
    tracker_url: str = "",
    postmortem: Postmortem | None = None,
) -> ActionItem:
    """A follow-up from the incident page or from its postmortem; recorded on the
    incident timeline."""
    if item_type not in ActionItemType.values:
        raise PostmortemRefused(f"“{item_type}” is not an action item type.")
    if not title.strip():
        raise PostmortemRefused("Give the action item a title.")
    with transaction.atomic():
        incident = _lock_incident(incident.pk)
        if postmortem is None:
            postmortem = Postmortem.objects.filter(incident=incident).first()
        elif postmortem.incident_id != incident.pk:
            raise PostmortemRefused("That postmortem belongs to another incident.")
        description = description.strip()
        item = ActionItem.objects.create(
            incident=incident,
            postmortem=postmortem,
            title=title.strip(),
            description=description,
            description_html=render_markdown(description) if description else "",
            owner=owner,
            team=team,
            due_date=due_date,
            priority=priority,
            item_type=item_type,
            tracker_url=tracker_url.strip(),
            created_by=actor,
            created_at=_now(),
        )
        _item_event(item, actor, f"{_name(actor)} created the action item.")
        _touch_postmortem(item.postmortem_id)
        owner_text = f", owned by {_name(owner)}" if owner else ""
        timeline_record(
            incident=incident,
            kind=TimelineKind.TASK,
            actor=actor,
            body=f"{_name(actor)} added a follow-up action item {item.reference}: "
            f"“{item.title}”{owner_text}.",
            data={"action_item": item.pk, "action": "added"},
        )
    return item


def action_item_update(
    *,
    item: ActionItem,
    actor,
    title: str,
    description: str,
    owner,
    team,
    due_date: dt.date | None,
    priority: int,
    item_type: str,
    tracker_url: str,
) -> ActionItem:
    with transaction.atomic():
        item = ActionItem.objects.select_for_update().get(pk=item.pk)
        changes = []
        if title.strip() != item.title:
            item.title = title.strip()
            changes.append("title")
        if description.strip() != item.description:
            item.description = description.strip()
            item.description_html = render_markdown(item.description) if item.description else ""
            changes.append("description")
        if (owner.pk if owner else None) != item.owner_id:
            item.owner = owner
            changes.append(f"owner to {_name(owner) if owner else 'nobody'}")
        if (team.pk if team else None) != item.team_id:
            item.team = team
            changes.append(f"team to {team.name if team else 'none'}")
        if due_date != item.due_date:
            item.due_date = due_date
            changes.append(f"due date to {due_date:%d %b %Y}" if due_date else "no due date")
        if int(priority) != item.priority:
            item.priority = int(priority)
            changes.append(f"priority to {item.get_priority_display()}")
        if item_type != item.item_type:
            item.item_type = item_type
            changes.append(f"type to {item.get_item_type_display().lower()}")
        if tracker_url.strip() != item.tracker_url:
            item.tracker_url = tracker_url.strip()
            changes.append("tracker link")
        if changes:
            item.save()
            _item_event(item, actor, f"{_name(actor)} changed " + ", ".join(changes) + ".")
            _touch_postmortem(item.postmortem_id)
    return item


def action_item_set_status(*, item: ActionItem, actor, status: str, reason: str = "") -> ActionItem:
    """Move an action item along; "won't do" needs a reason. Recorded on the incident
    timeline when it is finished (done or won't do) or reopened."""
    if status not in ActionItemStatus.values:
        raise PostmortemRefused(f"“{status}” is not an action item status.")
    reason = reason.strip()
    if status == ActionItemStatus.WONT_DO and not reason:
        raise PostmortemRefused("Say why this will not be done.")
    with transaction.atomic():
        incident = _lock_incident(item.incident_id)
        item = ActionItem.objects.select_for_update().get(pk=item.pk)
        if item.status == status:
            raise PostmortemRefused(f"It is already {item.get_status_display().lower()}.")
        old = item.get_status_display()
        was_finished = not item.is_open
        item.status = status
        item.wont_do_reason = reason if status == ActionItemStatus.WONT_DO else ""
        finished = status in (ActionItemStatus.DONE, ActionItemStatus.WONT_DO)
        item.completed_at = _now() if finished else None
        item.save()
        label = ActionItemStatus(status).label
        body = f"{_name(actor)} changed the status from {old} to {label}."
        if reason and status == ActionItemStatus.WONT_DO:
            body += f" Reason: {reason}"
        _item_event(item, actor, body)
        _touch_postmortem(item.postmortem_id)
        if finished or was_finished:
            verb = {
                ActionItemStatus.DONE: "completed",
                ActionItemStatus.WONT_DO: "decided not to do",
            }.get(status, "reopened")
            text = f"{_name(actor)} {verb} action item {item.reference} “{item.title}”."
            if status == ActionItemStatus.WONT_DO:
                text += f" Reason: {reason}"
            timeline_record(
                incident=incident,
                kind=TimelineKind.TASK,
                actor=actor,
                body=text,
                data={"action_item": item.pk, "action": status},
            )
    return item


# --- PDF export ----------------------------------------------------------------------------


def export_content_key(postmortem: Postmortem) -> str:
    return (
        f"r{postmortem.revision_number}.c{postmortem.content_version}"
        f".i{postmortem.incident.revision}"
    )


def postmortem_export_request(*, postmortem: Postmortem, actor) -> PostmortemExport:
    """Ask for the PDF of the postmortem as it is now. Returns the cached export when
    nothing changed; otherwise queues a render (enqueued after commit)."""
    if postmortem.status != PostmortemStatus.PUBLISHED:
        raise PostmortemRefused("Publish the postmortem before exporting it.")
    key = export_content_key(postmortem)
    with transaction.atomic():
        export, created = PostmortemExport.objects.get_or_create(
            postmortem=postmortem,
            content_key=key,
            defaults={"requested_by": actor, "requested_at": _now()},
        )
        if not created and export.state == ExportState.FAILED:
            PostmortemExport.objects.filter(pk=export.pk, state=ExportState.FAILED).update(
                state=ExportState.PENDING, error="", requested_at=_now(), requested_by=actor
            )
            export.refresh_from_db()
            created = True
        if created:
            from postmortems.tasks import postmortem_export_render

            export_id = export.pk
            transaction.on_commit(lambda: postmortem_export_render.delay(export_id))
    return export


def latest_export(postmortem: Postmortem) -> PostmortemExport | None:
    """The export for the postmortem's current content, if one was requested."""
    return (
        PostmortemExport.objects.filter(
            postmortem=postmortem, content_key=export_content_key(postmortem)
        )
        .defer("pdf")
        .first()
    )


STALE_RENDER = dt.timedelta(minutes=3)


def postmortem_export_claim(*, export_id: int) -> PostmortemExport | None:
    """Claim a pending export for rendering (a conditional UPDATE): two workers or a
    re-delivered task never render the same export twice. A render whose worker died
    (still "rendering" long after the hard time limit) may be claimed again."""
    now = _now()
    claimed = PostmortemExport.objects.filter(pk=export_id, state=ExportState.PENDING).update(
        state=ExportState.RENDERING, started_at=now
    )
    if not claimed:
        claimed = PostmortemExport.objects.filter(
            pk=export_id, state=ExportState.RENDERING, started_at__lt=now - STALE_RENDER
        ).update(started_at=now)
    if not claimed:
        return None
    PostmortemExport.objects.filter(pk=export_id).update(attempts=F("attempts") + 1)
    return PostmortemExport.objects.select_related("postmortem").get(pk=export_id)


def postmortem_export_finish(
    *, export_id: int, pdf: bytes | None, pages: int = 0, render_ms: int = 0, error: str = ""
) -> None:
    if pdf is not None:
        PostmortemExport.objects.filter(pk=export_id, state=ExportState.RENDERING).update(
            state=ExportState.READY,
            pdf=pdf,
            sha256=hashlib.sha256(pdf).hexdigest(),
            size=len(pdf),
            pages=pages,
            render_ms=render_ms,
            finished_at=_now(),
            error="",
        )
    else:
        PostmortemExport.objects.filter(pk=export_id, state=ExportState.RENDERING).update(
            state=ExportState.FAILED, finished_at=_now(), error=error[:2000]
        )
