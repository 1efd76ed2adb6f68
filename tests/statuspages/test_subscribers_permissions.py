"""Who may manage maintenance and webhook subscribers: page managers only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents.models import ScheduledMaintenance, StatusSubscriber
from tests.statuspages.conftest import make_status_page

MANAGER_URLS = ("maintenance_manage", "maintenance_cancel", "webhooks_manage", "webhook_remove")


@pytest.fixture
def world(db, admin_user):
    page = make_status_page("acme", title="Acme status")
    now = timezone.now()
    maintenance = ScheduledMaintenance.objects.create(
        page=page,
        title="DB upgrade",
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
    )
    webhook = StatusSubscriber.objects.create(
        page=page, kind="webhook", url="http://127.0.0.1:9/x", confirmed_at=now
    )
    return page, maintenance, webhook


def urls_for(page, maintenance, webhook) -> dict[str, str]:
    kwargs = {
        "maintenance_manage": {"slug": page.slug},
        "maintenance_cancel": {"slug": page.slug, "pk": maintenance.pk},
        "webhooks_manage": {"slug": page.slug},
        "webhook_remove": {"slug": page.slug, "pk": webhook.pk},
    }
    return {name: reverse(f"status:{name}", kwargs=kwargs[name]) for name in MANAGER_URLS}


def test_every_management_url_is_in_the_matrix():
    from django.urls import get_resolver

    status_names = {
        p.name
        for p in get_resolver().namespace_dict["status"][1].url_patterns
        if getattr(p, "callback", None) and p.callback.__module__.endswith("subscriber_views")
    }
    assert status_names - set(MANAGER_URLS) == {"subscribe", "subscription_confirm", "unsubscribe"}


@pytest.mark.django_db
@pytest.mark.parametrize("name", MANAGER_URLS)
def test_people_who_do_not_manage_pages_are_refused_and_nothing_changes(
    name, world, client, viewer, responder, outsider
):
    urls = urls_for(*world)
    data = {
        "title": "x",
        "url": "http://127.0.0.1:9/y",
        "starts_at": "2030-01-01T10:00",
        "ends_at": "2030-01-01T11:00",
        "notice_minutes": "60",
    }
    anonymous = client.post(urls[name], data)
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]
    for user in (viewer, responder, outsider):
        client.force_login(user)
        assert client.get(urls[name]).status_code in (403, 405)
        assert client.post(urls[name], data).status_code == 403
    assert ScheduledMaintenance.objects.get().state == "scheduled"
    assert StatusSubscriber.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", MANAGER_URLS)
def test_a_manager_reaches_every_management_url(name, world, client, admin_user):
    client.force_login(admin_user)
    urls = urls_for(*world)
    response = client.get(urls[name]) if name.endswith("manage") else client.post(urls[name])
    assert response.status_code in (200, 302)


@pytest.mark.django_db
def test_objects_of_another_page_are_not_found(world, client, admin_user):
    page, maintenance, webhook = world
    other = make_status_page("other")
    client.force_login(admin_user)
    for name, pk in (("maintenance_cancel", maintenance.pk), ("webhook_remove", webhook.pk)):
        url = reverse(f"status:{name}", kwargs={"slug": other.slug, "pk": pk})
        assert client.post(url).status_code == 404
    assert ScheduledMaintenance.objects.get().state == "scheduled"
    assert StatusSubscriber.objects.count() == 1


@pytest.mark.django_db
def test_the_admin_lists_subscribers_without_their_secrets(world, client, admin_user):
    page, maintenance, webhook = world
    StatusSubscriber.objects.filter(pk=webhook.pk).update(secret="s3cret-signing-key-0123")
    client.force_login(admin_user)
    for name in ("statussubscriber", "scheduledmaintenance", "statusdelivery"):
        assert client.get(reverse(f"admin:incidents_{name}_changelist")).status_code == 200
    detail = client.get(reverse("admin:incidents_statussubscriber_change", args=[webhook.pk]))
    assert detail.status_code == 200
    assert b"s3cret-signing-key-0123" not in detail.content
    assert (
        client.get(
            reverse("admin:incidents_scheduledmaintenance_change", args=[maintenance.pk])
        ).status_code
        == 200
    )


@pytest.mark.django_db
def test_the_admins_group_manages_pages_without_being_superusers(world, client):
    from tests.factories import make_user

    admin = make_user("ada-admin", groups=("Admins", "Responders"))
    assert not admin.is_superuser
    client.force_login(admin)
    for name, url in urls_for(*world).items():
        if name in ("maintenance_manage", "webhooks_manage"):
            assert client.get(url).status_code == 200, name


@pytest.mark.django_db
def test_a_refused_responder_is_told_who_may(world, client, responder):
    client.force_login(responder)
    response = client.get(urls_for(*world)["maintenance_manage"])
    assert response.status_code == 403
    assert "Admins group" in response.content.decode()
