"""Found in review: what one reader's request can make the shared cache tell everyone."""

from __future__ import annotations

import json

import feedparser
import pytest
from django.urls import reverse

from incidents.statuspages.services import status_update_publish
from tests.statuspages.conftest import make_component, make_status_page


def test_the_cached_json_and_feed_name_the_site_not_the_first_readers_host(
    client, incident, commander, settings
):
    """Renderings are shared by every reader: a Host header (any name ALLOWED_HOSTS lets
    through) or X-Forwarded-Proto sent by the first reader must not end up in them."""
    settings.SITE_URL = "https://status.example.org"
    page = make_status_page("acme", title="Acme status")
    status_update_publish(
        incident=incident, pages=[page], status="investigating", message="Looking.",
        title="Slow checkout", actor=commander,
    )  # fmt: skip
    summary_url = reverse("status:summary", args=["acme"])
    feed_url = reverse("status:feed", args=["acme"])
    for url in (summary_url, feed_url):
        assert client.get(url, HTTP_HOST="localhost").status_code == 200  # fills the cache

    data = json.loads(client.get(summary_url).content)
    assert data["page"]["url"] == "https://status.example.org/status/acme/"
    feed = feedparser.parse(client.get(feed_url).content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.link == "https://status.example.org/status/acme/"
    assert feed.entries[0].link.startswith("https://status.example.org/status/acme/#update-")
    assert "localhost" not in client.get(feed_url).content.decode()


def test_a_rendering_that_raced_a_change_to_internal_is_never_served_to_outsiders(
    client, db, monkeypatch
):
    """A public rendering finished just after the page became internal (and its cache
    was dropped) must not be stored as public: anonymous readers would get it for a
    minute from the middleware, which checks nobody."""
    from incidents.statuspages import views
    from incidents.statuspages.models import StatusPageVisibility
    from incidents.statuspages.signals import status_page_invalidate

    page = make_status_page("acme", title="Acme status")
    render_page = views.render_page

    def render_while_an_admin_makes_it_internal(rendered_page):
        entry = render_page(rendered_page)
        page.visibility = StatusPageVisibility.INTERNAL
        page.save()
        status_page_invalidate(page=page)
        return entry

    monkeypatch.setattr(views, "render_page", render_while_an_admin_makes_it_internal)
    url = reverse("status:page", args=["acme"])
    assert client.get(url).status_code == 200  # rendered when it was still public
    monkeypatch.setattr(views, "render_page", render_page)
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 302, "the raced public rendering was served"
        assert "/login" in response["Location"] or "next=" in response["Location"]


def test_the_admin_lists_no_public_update_of_a_restricted_incident_to_outsiders(
    make_user, restricted_incident, commander, admin_user
):
    """Staff who may read published updates, but not the restricted incident, must not
    read its own title in the updates admin (it shows the incident beside each update)."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    from incidents.statuspages.models import StatusUpdate

    page = make_status_page("acme", title="Acme status")
    status_update_publish(
        incident=restricted_incident, pages=[page], status="investigating",
        message="Some accounts need a password reset.", title="Account security",
        actor=commander,
    )  # fmt: skip
    update = StatusUpdate.objects.get()
    staff = make_user("stan", groups=("Viewers",), is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_statusupdate"))
    client = Client()
    client.force_login(staff)
    listing = client.get(reverse("admin:incidents_statusupdate_changelist"))
    assert listing.status_code == 200
    assert "Suspicious staff logins" not in listing.content.decode()
    detail = client.get(reverse("admin:incidents_statusupdate_change", args=[update.pk]))
    assert detail.status_code in (302, 404)  # the admin's "doesn't exist" answer

    client.force_login(admin_user)  # who may see the incident still finds it
    listing = client.get(reverse("admin:incidents_statusupdate_changelist"))
    assert "Suspicious staff logins" in listing.content.decode()


def test_renaming_a_page_in_the_admin_drops_what_was_cached_under_its_old_address(
    client, admin_user, django_capture_on_commit_callbacks
):
    """The page is renamed and made internal at once: its old address must not go on
    serving the cached public rendering to anonymous readers."""
    from django.test import Client

    page = make_status_page("acme", title="Acme status")
    old_url = reverse("status:page", args=["acme"])
    assert client.get(old_url).status_code == 200  # cached, public
    admin = Client()
    admin.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            reverse("admin:incidents_statuspage_change", args=[page.pk]),
            {
                "title": "Acme status",
                "slug": "acme-internal",
                "description": "",
                "visibility": "internal",
                "time_zone": "UTC",
                "order": 0,
                "groups-TOTAL_FORMS": 0,
                "groups-INITIAL_FORMS": 0,
                "components-TOTAL_FORMS": 0,
                "components-INITIAL_FORMS": 0,
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.get(old_url).status_code == 404


def test_a_window_beyond_next_year_is_refused_and_never_breaks_the_page(client, admin_user):
    """9999-12-31 23:59 typed in New York is past the largest datetime in UTC: stored, it
    could never be read back, and the manager's list and the public page would fail."""
    from django.test import Client

    from incidents.models import ScheduledMaintenance

    make_status_page("acme", title="Acme status")
    admin_user.time_zone = "America/New_York"
    admin_user.save()
    manager = Client()
    manager.force_login(admin_user)
    url = reverse("status:maintenance_manage", args=["acme"])
    for start, end in (
        ("9999-12-31T22:00", "9999-12-31T23:59"),
        ("2999-01-01T00:00", "2999-01-01T01:00"),
    ):
        response = manager.post(
            url, {"title": "Far", "starts_at": start, "ends_at": end, "notice_minutes": "0"}
        )
        assert response.status_code == 422
        assert "a year ahead" in response.content.decode()
    assert not ScheduledMaintenance.objects.exists()
    assert manager.get(url).status_code == 200
    assert client.get(reverse("status:page", args=["acme"])).status_code == 200


@pytest.mark.parametrize("step", ["start", "complete"])
def test_an_outage_set_while_maintenance_moves_components_is_never_overwritten(
    db, admin_user, monkeypatch, step
):
    """Maintenance reads a component's status, then sets it. An incident that set the
    component to major outage in between (committed before maintenance took the row
    lock) must keep it: the outage is the truth, not "under maintenance" or "operational"."""
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from incidents.models import ComponentStatus
    from incidents.statuspages import services
    from incidents.statuspages.maintenance import (
        maintenance_complete,
        maintenance_schedule,
        maintenance_start,
    )
    from incidents.statuspages.models import Component

    page = make_status_page("acme")
    api = make_component(page, "API")
    now = timezone.now()
    window = maintenance_schedule(
        page=page, title="Upgrade", message="", components=[api],
        starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(minutes=65),
        actor=admin_user, notice_minutes=0,
    )  # fmt: skip
    with time_machine.travel(now + timedelta(minutes=6)):
        if step == "complete":
            assert maintenance_start(maintenance_id=window.pk)
        write = services._component_status_write

        def an_incident_got_there_first(*, component, **kwargs):
            Component.objects.filter(pk=component.pk).update(status=ComponentStatus.MAJOR_OUTAGE)
            return write(component=component, **kwargs)

        monkeypatch.setattr(services, "_component_status_write", an_incident_got_there_first)
        if step == "start":
            assert maintenance_start(maintenance_id=window.pk)
    if step == "complete":
        with time_machine.travel(now + timedelta(minutes=70)):
            assert maintenance_complete(maintenance_id=window.pk)
    api.refresh_from_db()
    assert api.status == ComponentStatus.MAJOR_OUTAGE


def _all_views(patterns, prefix=""):
    from django.urls import URLPattern, URLResolver

    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _all_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_only_the_known_token_and_subscriber_endpoints_skip_the_csrf_check():
    """Every state change carries a CSRF token, except where the link or URL token is the
    credential (integrations, heartbeat pings, RFC 8058 unsubscribe) and the public
    subscribe form (cached for everyone, so it cannot carry a token; it only mails a
    confirmation, and checks CSRF itself on internal pages). A new exemption must be
    added here on purpose."""
    from django.urls import get_resolver

    exempt = {
        route
        for route, view in _all_views(get_resolver().url_patterns)
        if getattr(view, "csrf_exempt", False) and not route.startswith("admin/")
    }
    assert exempt == {
        "integrations/pagerduty/enqueue",
        "integrations/<str:token>/alertmanager",
        "integrations/<str:token>/pagerduty",
        "integrations/<str:token>/generic",
        "integrations/<str:token>/heartbeat",
        "status/<slug:slug>/subscribe/",
        "status/subscriptions/<int:pk>/unsubscribe/<str:token>/",
    }


def test_extra_query_parameters_are_no_way_around_the_cache_for_history_either(
    client, db, django_assert_num_queries
):
    make_status_page("acme")
    url = reverse("status:history", args=["acme"])
    client.get(url + "?page=1")
    with django_assert_num_queries(0):
        assert client.get(url + "?page=1&utm_source=x&nocache=7").status_code == 200
        assert client.get(url + "?nocache=7").status_code == 200


def test_the_admin_unsubscribes_but_never_resubscribes_someone(admin_user):
    """Clearing "unsubscribed at" in the admin would send mail again to someone who asked
    to stop, without their click. The admin unsubscribes through the service (which also
    cancels what was waiting to be sent) and cannot undo an unsubscribe."""
    from django.test import Client
    from django.utils import timezone

    from incidents.models import StatusSubscriber

    page = make_status_page("acme")
    gone = StatusSubscriber.objects.create(
        page=page, kind="email", email="gone@example.org",
        confirmed_at=timezone.now(), unsubscribed_at=timezone.now(),
    )  # fmt: skip
    reader = StatusSubscriber.objects.create(
        page=page, kind="email", email="reader@example.org", confirmed_at=timezone.now()
    )
    admin = Client()
    admin.force_login(admin_user)
    change = reverse("admin:incidents_statussubscriber_change", args=[gone.pk])
    admin.post(change, {"label": "", "unsubscribed_at_0": "", "unsubscribed_at_1": ""})
    gone.refresh_from_db()
    assert gone.unsubscribed_at is not None

    response = admin.post(
        reverse("admin:incidents_statussubscriber_changelist"),
        {"action": "unsubscribe_selected", "_selected_action": [reader.pk]},
    )
    assert response.status_code == 302
    reader.refresh_from_db()
    assert reader.unsubscribed_at is not None and not reader.is_active


def test_the_admin_refuses_a_slug_the_status_urls_already_use(admin_user):
    """/status/manage/ is the managers' screen: a page called "manage" could never be read."""
    from django.test import Client

    from incidents.statuspages.models import StatusPage

    admin = Client()
    admin.force_login(admin_user)
    response = admin.post(
        reverse("admin:incidents_statuspage_add"),
        {
            "title": "Manage",
            "slug": "manage",
            "description": "",
            "visibility": "public",
            "time_zone": "UTC",
            "order": 0,
            "groups-TOTAL_FORMS": 0,
            "groups-INITIAL_FORMS": 0,
            "components-TOTAL_FORMS": 0,
            "components-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "already used by" in response.content.decode()
    assert not StatusPage.objects.filter(slug="manage").exists()
