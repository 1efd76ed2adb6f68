from __future__ import annotations

import pytest
from django.core.cache import cache

from incidents.models import IncidentStatus, TimelineKind
from incidents.services import incident_transition
from incidents.statuspages import signals
from incidents.statuspages.caching import cache_key
from incidents.statuspages.models import (
    ComponentStatus,
    ComponentStatusInterval,
    PublicStatus,
    StatusPageIncident,
)
from incidents.statuspages.services import (
    StatusPageRefused,
    component_status_set,
    status_update_publish,
)
from tests.statuspages.conftest import make_component, make_status_page


@pytest.fixture
def received():
    got: list[tuple[str, dict]] = []

    def on_update(sender, **kwargs):
        got.append(("update", kwargs))

    def on_component(sender, **kwargs):
        got.append(("component", kwargs))

    signals.status_update_published.connect(on_update, dispatch_uid="t-update")
    signals.component_status_changed.connect(on_component, dispatch_uid="t-component")
    yield got
    signals.status_update_published.disconnect(dispatch_uid="t-update")
    signals.component_status_changed.disconnect(dispatch_uid="t-component")


def test_setting_a_component_opens_and_closes_intervals(
    incident, commander, received, django_capture_on_commit_callbacks
):
    page = make_status_page()
    api = make_component(page, "API")
    with django_capture_on_commit_callbacks(execute=True):
        assert component_status_set(
            component=api, status=ComponentStatus.MAJOR_OUTAGE, actor=commander, incident=incident
        )
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(component=api, status=ComponentStatus.OPERATIONAL, actor=commander)
    intervals = list(ComponentStatusInterval.objects.filter(component=api).order_by("pk"))
    assert [i.status for i in intervals] == ["major_outage", "operational"]
    assert intervals[0].ended_at == intervals[1].started_at
    assert intervals[0].incident == incident and intervals[1].ended_at is None
    api.refresh_from_db()
    assert api.status == "operational"
    entry = incident.timeline.filter(kind=TimelineKind.STATUS, data__component=api.pk).get()
    assert "API" in entry.body and "major outage" in entry.body
    assert [(k, kw["old_status"], kw["new_status"]) for k, kw in received] == [
        ("component", "operational", "major_outage"),
        ("component", "major_outage", "operational"),
    ]


def test_setting_the_same_status_changes_and_sends_nothing(
    incident, commander, received, django_capture_on_commit_callbacks
):
    api = make_component(make_status_page(), "API")
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(component=api, status=ComponentStatus.OPERATIONAL, actor=commander)
    with django_capture_on_commit_callbacks(execute=True):
        assert not component_status_set(
            component=api, status=ComponentStatus.OPERATIONAL, actor=commander, incident=incident
        )
    assert received == []
    assert not ComponentStatusInterval.objects.exists()
    assert not incident.timeline.filter(data__component=api.pk).exists()


def test_publishing_writes_the_update_the_page_entry_and_the_timeline(
    incident, commander, received, django_capture_on_commit_callbacks
):
    page, other = make_status_page(), make_status_page()
    with django_capture_on_commit_callbacks(execute=True):
        update = status_update_publish(
            incident=incident,
            pages=[page, other],
            status=PublicStatus.INVESTIGATING,
            message="Checkout is **slow**. <script>alert(1)</script>",
            title="Slow checkout",
            actor=commander,
        )
    assert set(update.pages.all()) == {page, other}
    assert "<strong>slow</strong>" in update.message_html and "<script" not in update.message_html
    assert (
        StatusPageIncident.objects.filter(incident=incident, public_title="Slow checkout").count()
        == 2
    )
    entry = incident.timeline.get(data__status_update=update.pk)
    assert entry.kind == TimelineKind.UPDATE and "Public update" in entry.body
    assert [k for k, _ in received] == ["update"] and received[0][1]["update"] == update


def test_a_new_page_needs_a_public_title(incident, commander):
    page = make_status_page()
    with pytest.raises(StatusPageRefused, match="public title"):
        status_update_publish(
            incident=incident, pages=[page], status="investigating", message="x", actor=commander
        )
    assert not StatusPageIncident.objects.exists()


def test_resolving_marks_the_incident_resolved_on_the_page(incident, commander):
    page = make_status_page()
    status_update_publish(
        incident=incident,
        pages=[page],
        status="investigating",
        message="Looking",
        title="Slow",
        actor=commander,
    )
    status_update_publish(
        incident=incident, pages=[page], status="resolved", message="Fixed", actor=commander
    )
    entry = StatusPageIncident.objects.get(page=page, incident=incident)
    assert entry.resolved_at is not None and entry.public_title == "Slow"


def test_closed_incidents_take_no_public_updates(incident, commander):
    for to in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
        incident = incident_transition(incident=incident, actor=commander, to_status=to)
    with pytest.raises(StatusPageRefused):
        status_update_publish(
            incident=incident,
            pages=[make_status_page()],
            status="resolved",
            message="x",
            title="t",
            actor=commander,
        )


def test_publishing_drops_the_cached_page(incident, commander, django_capture_on_commit_callbacks):
    page = make_status_page()
    cache.set(cache_key(page.slug, "page"), {"stale": True})
    with django_capture_on_commit_callbacks(execute=True):
        status_update_publish(
            incident=incident,
            pages=[page],
            status="investigating",
            message="m",
            title="t",
            actor=commander,
        )
    assert cache.get(cache_key(page.slug, "page")) is None
