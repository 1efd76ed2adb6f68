"""Every write to status pages: component statuses and public updates.

Writes made on behalf of an incident lock the incident (as incidents.services does) and
record a timeline entry in the same transaction, so the incident's timeline shows what the
outside world was told and when. Signals and cache invalidation happen on commit, and only
when something a reader would notice changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from incidents.markdown import render_markdown
from incidents.models import Incident, IncidentStatus, TimelineKind
from incidents.services import IncidentRefused, _lock, _name, _one_line, timeline_record
from incidents.statuspages.models import (
    Component,
    ComponentStatus,
    ComponentStatusInterval,
    PublicStatus,
    StatusPage,
    StatusPageIncident,
    StatusUpdate,
)
from incidents.statuspages.signals import (
    component_status_changed,
    status_page_invalidate,
    status_update_published,
)

MESSAGE_MAX_LENGTH = 5000


class StatusPageRefused(IncidentRefused):
    """A status-page write that cannot be made; the message says why."""


def _invalidate_on_commit(pages: Iterable[StatusPage]) -> None:
    pages = list({p.pk: p for p in pages}.values())

    def forget() -> None:
        for page in pages:
            status_page_invalidate(page=page)

    transaction.on_commit(forget)


def _component_status_write(
    *,
    component: Component,
    status: str,
    actor,
    incident: Incident | None,
    at: datetime,
    expected: str | None = None,
) -> str | None:
    """Close the open interval and open a new one. Returns the old status, or None when
    nothing changed (or the status under the lock is not `expected`). Call inside a
    transaction."""
    component = Component.objects.select_for_update().get(pk=component.pk)
    old_status = component.status
    if old_status == status or (expected is not None and old_status != expected):
        return None
    ComponentStatusInterval.objects.filter(component=component, ended_at__isnull=True).update(
        ended_at=at
    )
    ComponentStatusInterval.objects.create(
        component=component, status=status, started_at=at, incident=incident, set_by=actor
    )
    component.status = status
    component.status_changed_at = at
    component.save(update_fields=["status", "status_changed_at"])
    return old_status


def component_status_set(
    *,
    component: Component,
    status: str,
    actor,
    incident: Incident | None = None,
    expected: str | None = None,
) -> bool:
    """Set a component's status. Returns False (and changes and sends nothing) when the
    component already has that status.

    With an incident, the incident is locked and the change written on its timeline.
    With `expected`, only a component whose status (under the row lock) is still that
    one changes: for automatic changes (maintenance) decided from an earlier read, which
    must never overwrite what someone set in between.
    """
    if status not in ComponentStatus.values:
        raise StatusPageRefused(f"“{status}” is not a component status.")
    now = timezone.now()
    with transaction.atomic():
        if incident is not None:
            incident = _lock(incident)
            if incident.status == IncidentStatus.CLOSED:
                raise StatusPageRefused("A closed incident no longer changes component statuses.")
        old_status = _component_status_write(
            component=component,
            status=status,
            actor=actor,
            incident=incident,
            at=now,
            expected=expected,
        )
        if old_status is None:
            return False
        component = Component.objects.select_related("page").get(pk=component.pk)
        if incident is not None:
            old_label = ComponentStatus(old_status).label.lower()
            new_label = ComponentStatus(status).label.lower()
            timeline_record(
                incident=incident,
                kind=TimelineKind.STATUS,
                actor=actor,
                body=(
                    f"{_name(actor)} set {component.name} on the status page "
                    f"“{component.page.title}” from {old_label} to {new_label}."
                ),
                data={
                    "component": component.pk,
                    "page": component.page_id,
                    "from": old_status,
                    "to": status,
                },
                at=now,
            )
        _invalidate_on_commit([component.page])
        transaction.on_commit(
            lambda: component_status_changed.send(
                sender=Component,
                component=component,
                old_status=old_status,
                new_status=status,
                at=now,
            )
        )
    return True


def status_update_publish(
    *,
    incident: Incident,
    pages: Iterable[StatusPage],
    status: str,
    message: str,
    actor,
    title: str = "",
    component_statuses: dict[int, str] | None = None,
) -> StatusUpdate:
    """Publish one public update about `incident` to `pages`.

    `title` is the public title of the incident on these pages; it is required the first
    time the incident appears on a page and replaces the old one when given later. A
    status of "resolved" marks the incident resolved on those pages. `component_statuses`
    (component id -> status) are set in the same transaction. The update is written on the
    incident's timeline.
    """
    pages = list({p.pk: p for p in pages}.values())
    message = message.strip()
    title = _one_line(title or "")
    if not pages:
        raise StatusPageRefused("Choose at least one status page to publish to.")
    if status not in PublicStatus.values:
        raise StatusPageRefused(f"“{status}” is not a public update status.")
    if not message:
        raise StatusPageRefused("Write a message: that is what readers of the page see.")
    if len(message) > MESSAGE_MAX_LENGTH:
        raise StatusPageRefused(f"Keep the message under {MESSAGE_MAX_LENGTH} characters.")
    if len(title) > 200:
        raise StatusPageRefused("Keep the public title under 200 characters.")
    now = timezone.now()
    with transaction.atomic():
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise StatusPageRefused("A closed incident takes no more public updates.")
        existing = {
            e.page_id: e
            for e in StatusPageIncident.objects.select_for_update().filter(
                incident=incident, page__in=pages
            )
        }
        missing_title = [p.title for p in pages if p.pk not in existing and not title]
        if missing_title:
            raise StatusPageRefused(
                "Give the incident a public title: it is new on " + ", ".join(missing_title) + "."
            )
        resolved_at = now if status == PublicStatus.RESOLVED else None
        for page in pages:
            entry = existing.get(page.pk)
            if entry is None:
                StatusPageIncident.objects.create(
                    page=page,
                    incident=incident,
                    public_title=title,
                    status=status,
                    first_published_at=now,
                    last_published_at=now,
                    resolved_at=resolved_at,
                )
            else:
                entry.public_title = title or entry.public_title
                entry.status = status
                entry.last_published_at = now
                entry.resolved_at = resolved_at
                entry.save()
        update = StatusUpdate.objects.create(
            incident=incident,
            status=status,
            message=message,
            message_html=render_markdown(message),
            author=actor,
            published_at=now,
        )
        update.pages.set(pages)
        page_names = ", ".join(f"“{p.title}”" for p in pages)
        timeline_record(
            incident=incident,
            kind=TimelineKind.UPDATE,
            actor=actor,
            body=(
                f"**Public update ({PublicStatus(status).label.lower()}) published to "
                f"{page_names}**\n\n{message}"
            ),
            markdown=True,
            data={
                "status_update": update.pk,
                "public": True,
                "pages": [p.pk for p in pages],
                "status": status,
            },
            at=now,
        )
        for component_id, component_status in (component_statuses or {}).items():
            component_status_set(
                component=Component.objects.get(pk=component_id),
                status=component_status,
                actor=actor,
                incident=incident,
            )
        _invalidate_on_commit(pages)
        transaction.on_commit(
            lambda: status_update_published.send(sender=StatusUpdate, update=update)
        )
    return update
