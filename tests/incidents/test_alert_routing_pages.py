"""Routing rules and maintenance windows on a service's page, as a responder uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents.alerting.matchers import parse_matchers
from incidents.models import AlertRule, MaintenanceWindow, Severity

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(make_service):
    return make_service("Checkout")


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def page(client, service) -> str:
    response = client.get(reverse("services:service_detail", kwargs={"slug": service.slug}))
    assert response.status_code == 200
    return response.content.decode()


def rules_url(service):
    return reverse("alerts:rules", kwargs={"slug": service.slug})


def rule_body(**overrides):
    return {
        "name": "Database pages",
        "matchers": "labels.team = db\nlabels.instance =~ db-[0-9]+",
        "action": "open",
        "severity": Severity.objects.get(name="SEV2").pk,
        "grouping": "window",
        "window_minutes": "15",
        "auto_resolve": "on",
    } | overrides


def test_with_no_rules_the_page_shows_the_default_behaviour(service, responder):
    html = page(client_for(responder), service)
    assert "Every alert (no rules yet)" in html
    assert "Critical: opens or joins a" in html and "SEV1" in html
    assert "Warning: recorded only" in html and "Info: recorded only" in html
    assert "No maintenance scheduled." in html


def test_a_responder_adds_a_rule_and_sees_it_on_the_service_page(service, responder):
    client = client_for(responder)
    form = client.get(rules_url(service))
    assert form.status_code == 200 and "Add a routing rule" in form.content.decode()
    response = client.post(rules_url(service), rule_body())
    assert response.status_code == 302 and response["Location"].endswith("#routing-h")
    rule = AlertRule.objects.get()
    assert rule.matchers == parse_matchers("labels.team = db\nlabels.instance =~ db-[0-9]+")
    assert rule.window_minutes == 15 and rule.auto_resolve
    html = page(client, service)
    assert "1. Database pages" in html and "labels.instance =~ db-[0-9]+" in html
    assert "within 15 minutes join one incident" in html
    assert "resolves itself when all its alerts resolve" in html
    assert "Alerts no rule matches" in html


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"matchers": "labels.x =~ (a+)+"}, "matchers", "Line 1: the regular expression repeats"),
        (
            {"matchers": "labels.x =~ [oops"},
            "matchers",
            "Line 1: the regular expression is invalid",
        ),
        ({"matchers": "colour = red"}, "matchers", "is not a field"),
        ({"severity": ""}, "severity", "Choose the severity"),
        ({"window_minutes": "0"}, "window_minutes", "greater than or equal to 1"),
        ({"grouping": "sometimes"}, "grouping", "Select a valid choice"),
    ],
)
def test_a_bad_rule_is_a_422_with_the_fields_error(service, responder, overrides, field, message):
    response = client_for(responder).post(rules_url(service), rule_body(**overrides))
    assert response.status_code == 422
    assert message in response.context["form"].errors[field][0]
    assert message.split(":")[0] in response.content.decode()
    assert AlertRule.objects.count() == 0


def test_editing_a_rule_keeps_its_place(service, responder):
    client = client_for(responder)
    client.post(rules_url(service), rule_body(name="First"))
    client.post(rules_url(service), rule_body(name="Second"))
    first = AlertRule.objects.get(name="First")
    form = client.get(rules_url(service), {"rule": first.pk}).content.decode()
    assert "labels.team = db" in form and 'value="First"' in form
    response = client.post(
        rules_url(service),
        rule_body(name="First, quieter", action="record", rule=first.pk, matchers=""),
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.name == "First, quieter" and first.action == "record"
    assert first.severity is None and first.matchers == [] and first.position == 0


def test_rules_are_reordered_and_deleted(service, responder):
    client = client_for(responder)
    for name in ("A", "B", "C"):
        client.post(rules_url(service), rule_body(name=name))
    c = AlertRule.objects.get(name="C")
    move = reverse("alerts:rule_move", kwargs={"slug": service.slug})
    client.post(move, {"rule": c.pk, "direction": "up"})
    order = list(service.alert_rules.order_by("position").values_list("name", flat=True))
    assert order == ["A", "C", "B"]
    html = page(client, service)
    assert html.index("1. A") < html.index("2. C") < html.index("3. B")
    client.post(move, {"rule": AlertRule.objects.get(name="A").pk, "direction": "up"})  # top
    delete = reverse("alerts:rule_delete", kwargs={"slug": service.slug})
    client.post(delete, {"rule": c.pk})
    assert list(service.alert_rules.values_list("name", flat=True)) == ["A", "B"]


def test_another_services_rule_is_a_404(service, responder, make_service):
    other = make_service("Other")
    rule = AlertRule.objects.create(service=other, matchers=[], action="record")
    client = client_for(responder)
    assert client.get(rules_url(service), {"rule": rule.pk}).status_code == 404
    assert client.post(rules_url(service), rule_body(rule=rule.pk)).status_code == 404
    for name in ("rule_delete", "rule_move"):
        url = reverse(f"alerts:{name}", kwargs={"slug": service.slug})
        assert client.post(url, {"rule": rule.pk}).status_code == 404
        assert client.post(url, {"rule": "nonsense"}).status_code == 404
    assert AlertRule.objects.get().action == "record"


@pytest.mark.parametrize(
    "name", ["rules", "rule_delete", "rule_move", "maintenance", "maintenance_cancel"]
)
def test_viewers_and_outsiders_cannot_change_routing(service, viewer, outsider, name):
    rule = AlertRule.objects.create(service=service, matchers=[], action="record")
    window = MaintenanceWindow.objects.create(
        service=service,
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(hours=1),
        reason="Upgrade",
    )
    url = reverse(f"alerts:{name}", kwargs={"slug": service.slug})
    body = rule_body(rule=rule.pk) | {"window": window.pk, "reason": "x"}
    for user in (viewer, outsider):
        client = client_for(user)
        assert client.get(url).status_code in (403, 405)
        assert client.post(url, body).status_code == 403
    assert AlertRule.objects.get().action == "record"
    assert MaintenanceWindow.objects.get().cancelled_at is None
    assert "Alert routing" not in page(client_for(viewer), service)


def test_a_change_without_a_csrf_token_is_refused(service, responder):
    client = client_for(responder, enforce_csrf_checks=True)
    assert client.post(rules_url(service), rule_body()).status_code == 403
    assert AlertRule.objects.count() == 0


@time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC), tick=True)
def test_maintenance_times_are_typed_and_shown_in_the_viewers_zone(service, make_user):
    dana = make_user("dana", first_name="Dana", time_zone="America/New_York")
    client = client_for(dana)
    url = reverse("alerts:maintenance", kwargs={"slug": service.slug})
    form = client.get(url).content.decode()
    assert "Starts (America/New_York)" in form and "America/New_York" in form
    next_year = timezone.now().year + 1
    response = client.post(
        url,
        {
            "starts_at": f"{next_year}-01-15T09:00",
            "ends_at": f"{next_year}-01-15T11:30",
            "reason": "Database upgrade",
        },
    )
    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert window.starts_at == datetime(next_year, 1, 15, 14, 0, tzinfo=UTC)  # EST is UTC-5
    assert window.created_by == dana
    html = page(client, service)
    assert "15 Jan" in html and "09:00 EST" in html and "11:30 EST" in html
    assert "Database upgrade" in html and "In maintenance now" not in html


def test_an_active_window_is_announced_and_can_be_ended(service, responder):
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        service=service,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        reason="Failover drill",
        created_by=responder,
    )
    client = client_for(responder)
    html = page(client, service)
    assert "In maintenance now" in html and "Failover drill" in html and "End now" in html
    cancel = reverse("alerts:maintenance_cancel", kwargs={"slug": service.slug})
    assert client.post(cancel, {"window": window.pk}).status_code == 302
    window.refresh_from_db()
    assert window.cancelled_at is not None and window.cancelled_by == responder
    assert "In maintenance now" not in page(client, service)
    assert client.post(cancel, {"window": window.pk}).status_code == 302  # no change, no error


@pytest.mark.parametrize(
    "starts, ends, message",
    [
        ("2030-01-01T10:00", "2030-01-01T09:00", "must end after it starts"),
        ("2020-01-01T10:00", "2020-01-01T11:00", "already over"),
        ("2030-01-01T10:00", "2030-03-01T10:00", "at most 31 days"),
        ("yesterday", "2030-01-01T10:00", "Enter a valid date/time"),
    ],
)
def test_a_bad_window_is_a_422_with_the_fields_error(service, responder, starts, ends, message):
    url = reverse("alerts:maintenance", kwargs={"slug": service.slug})
    response = client_for(responder).post(
        url, {"starts_at": starts, "ends_at": ends, "reason": "x"}
    )
    assert response.status_code == 422 and message in response.content.decode()
    assert MaintenanceWindow.objects.count() == 0


def test_the_panel_costs_the_same_queries_for_one_rule_or_twenty(service, responder):
    client = client_for(responder)

    def count():
        with CaptureQueriesContext(connection) as queries:
            page(client, service)
        return len(queries)

    sev = Severity.objects.get(name="SEV2")
    AlertRule.objects.create(service=service, matchers=[], action="open", severity=sev)
    count()  # warm: the session and the viewer's permissions are cached after one view
    one = count()
    for n in range(19):
        AlertRule.objects.create(
            service=service, position=n + 1, matchers=[], action="open", severity=sev
        )
    assert count() == one


def test_a_window_typed_far_in_the_future_is_refused_and_the_page_keeps_working(service, make_user):
    # 9999-12-31 evening in New York is past year 9999 in UTC: once stored, Python could
    # never read it back and the service page would fail for everyone.
    dana = make_user("dana", time_zone="America/New_York")
    client = client_for(dana)
    url = reverse("alerts:maintenance", kwargs={"slug": service.slug})
    response = client.post(
        url,
        {"starts_at": "9999-12-31T20:00", "ends_at": "9999-12-31T23:00", "reason": "Typo"},
    )
    assert response.status_code == 422
    assert "at most a year ahead" in response.content.decode()
    assert not MaintenanceWindow.objects.exists()
    assert "Alert routing" in page(client, service)
