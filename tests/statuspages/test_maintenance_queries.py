"""The managers' lists cost the same number of queries for 2 rows or 40."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents.models import ScheduledMaintenance, StatusSubscriber
from tests.statuspages.conftest import make_component, make_status_page


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def add_rows(page, components, n: int) -> None:
    now = timezone.now()
    for i in range(n):
        maintenance = ScheduledMaintenance.objects.create(
            page=page,
            title=f"Window {i}",
            starts_at=now + timedelta(days=1, hours=i),
            ends_at=now + timedelta(days=1, hours=i + 1),
        )
        maintenance.components.set(components)
        webhook = StatusSubscriber.objects.create(
            page=page, kind="webhook", url=f"https://hooks.example.test/{i}", confirmed_at=now
        )
        webhook.components.set(components)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["maintenance_manage", "webhooks_manage"])
def test_manager_lists_have_a_constant_query_count(name, client, admin_user):
    page = make_status_page("acme")
    components = [make_component(page, "API", group="Platform"), make_component(page, "DB")]
    client.force_login(admin_user)
    url = reverse(f"status:{name}", kwargs={"slug": page.slug})
    add_rows(page, components, 2)
    few = queries_for(client, url)
    add_rows(page, components, 38)
    many = queries_for(client, url)
    assert few == many
