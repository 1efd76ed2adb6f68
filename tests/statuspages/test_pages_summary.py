"""The JSON summary, the badge, and the history bars' days."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents.statuspages.maintenance import maintenance_schedule
from incidents.statuspages.models import ComponentStatus, ComponentStatusInterval
from incidents.statuspages.selectors import NO_DATA, component_days
from incidents.statuspages.services import component_status_set, status_update_publish
from tests.statuspages.conftest import make_component, make_status_page


def test_the_summary_lists_status_components_incidents_and_maintenance(
    client, incident, commander, django_capture_on_commit_callbacks
):
    page = make_status_page("acme", title="Acme status")
    api = make_component(page, "API", group="Platform")
    web = make_component(page, "Website")
    component_status_set(component=api, status=ComponentStatus.PARTIAL_OUTAGE, actor=commander)
    status_update_publish(
        incident=incident, pages=[page], status="identified", message="Found **it**",
        title="API errors", actor=commander,
    )  # fmt: skip
    client.get(reverse("status:summary", args=["acme"]))  # cached before the maintenance
    with django_capture_on_commit_callbacks(execute=True):
        maintenance_schedule(
            page=page,
            title="Database upgrade",
            message="Read-only for ten minutes.",
            components=[web],
            starts_at=timezone.now() + timedelta(days=1),
            ends_at=timezone.now() + timedelta(days=1, hours=1),
            actor=commander,
        )
    response = client.get(reverse("status:summary", args=["acme"]))
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    data = response.json()
    assert data["page"]["name"] == "Acme status" and data["page"]["time_zone"] == "UTC"
    assert data["status"] == {"indicator": "major", "description": "Partial system outage"}
    assert [(c["name"], c["group"], c["status"]) for c in data["components"]] == [
        ("API", "Platform", "partial_outage"),
        ("Website", None, "operational"),
    ]
    [item] = data["incidents"]
    assert item["name"] == "API errors" and item["status"] == "identified"
    assert item["updates"][0]["body"] == "Found **it**"
    assert "<strong>it</strong>" in item["updates"][0]["body_html"]
    [upcoming] = data["scheduled_maintenances"]["upcoming"]
    assert upcoming["name"] == "Database upgrade" and upcoming["components"] == ["Website"]
    assert data["scheduled_maintenances"]["in_progress"] == []


def test_resolved_incidents_leave_the_summary(client, incident, commander):
    page = make_status_page("acme")
    for status in ("investigating", "resolved"):
        status_update_publish(
            incident=incident, pages=[page], status=status, message="m", title="t",
            actor=commander,
        )  # fmt: skip
    assert client.get(reverse("status:summary", args=["acme"])).json()["incidents"] == []
    history = client.get(reverse("status:history", args=["acme"])).content.decode()
    assert ">t</h3>" in history


def test_the_badge_is_an_accessible_svg(client, db):
    make_status_page("acme", title="Acme & co")
    response = client.get(reverse("status:badge", args=["acme"]))
    assert response["Content-Type"].startswith("image/svg+xml")
    svg = response.content.decode()
    assert 'role="img"' in svg and 'aria-label="Acme &amp; co: All systems operational"' in svg
    assert "<title>Acme &amp; co: All systems operational</title>" in svg


def test_history_pages_go_back_page_by_page(client, commander, make_incident):
    page = make_status_page("acme")
    for n in range(12):
        incident = make_incident(declared_by=commander, title=f"Internal {n}")
        for status in ("investigating", "resolved"):
            status_update_publish(
                incident=incident, pages=[page], status=status, message="m",
                title=f"Public {n:02d}", actor=commander,
            )  # fmt: skip
    first = client.get(reverse("status:history", args=["acme"])).content.decode()
    second = client.get(reverse("status:history", args=["acme"]) + "?page=2").content.decode()
    assert "Public 11" in first and "Public 02" in first and "Public 01" not in first
    assert "Public 01" in second and "Public 00" in second and "Public 11" not in second
    assert "Older incidents" in first and "Newer incidents" in second
    for bad in ("?page=999", "?page=abc", "?page=-1"):
        assert client.get(reverse("status:history", args=["acme"]) + bad).status_code == 200


def test_a_day_takes_its_worst_status_in_the_pages_zone(db):
    page = make_status_page("acme", time_zone="America/New_York")
    component = make_component(page, "API")
    zone = zoneinfo.ZoneInfo("America/New_York")
    now = datetime(2026, 3, 10, 12, 0, tzinfo=zone)
    type(component).objects.filter(pk=component.pk).update(created_at=now - timedelta(days=5))
    component.refresh_from_db()
    # 23:30-00:30 New York time on 8-9 March: a major outage touching both days; then
    # degraded performance for a minute on 9 March.
    start = datetime(2026, 3, 8, 23, 30, tzinfo=zone)
    spans = [
        (start, start + timedelta(hours=1), ComponentStatus.MAJOR_OUTAGE),
        (start + timedelta(hours=1), start + timedelta(hours=5), ComponentStatus.OPERATIONAL),
        (
            start + timedelta(hours=5),
            start + timedelta(hours=5, minutes=1),
            ComponentStatus.DEGRADED_PERFORMANCE,
        ),
        (start + timedelta(hours=5, minutes=1), None, ComponentStatus.OPERATIONAL),
    ]
    for s, e, status in spans:
        ComponentStatusInterval.objects.create(
            component=component, status=status, started_at=s, ended_at=e
        )
    row = component_days(components=[component], zone=zone, now=now, days=7)[component.pk]
    by_day = {d.day.isoformat(): d.status for d in row.days}
    assert by_day == {
        "2026-03-04": NO_DATA,
        "2026-03-05": "operational",
        "2026-03-06": "operational",
        "2026-03-07": "operational",
        "2026-03-08": "major_outage",
        "2026-03-09": "major_outage",
        "2026-03-10": "operational",
    }
    assert row.days[4].label == "8 Mar 2026: major outage"
    assert 0.99 < row.uptime < 1


@pytest.mark.django_db
def test_an_unknown_page_summary_is_a_json_404(client):
    response = client.get(reverse("status:summary", args=["no-such-page"]))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not found"
