"""The action items dashboard: row buttons only for people who may use them; status filter."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from postmortems import services
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add(incident, actor, title, *, owner=None, status="open"):
    item = services.action_item_create(
        incident=incident, actor=actor, title=title, item_type="corrective", owner=owner,
        due_date=dt.date(2030, 1, 1),
    )  # fmt: skip
    if status != "open":
        services.action_item_set_status(item=item, actor=actor, status=status, reason="x")
    return item


def test_a_viewer_sees_no_start_buttons_except_on_their_own_items(
    commander, viewer, make_resolved_incident
):
    incident = make_resolved_incident(declared_by=commander)
    theirs = add(incident, commander, "Sid's own item", owner=viewer)
    other = add(incident, commander, "Someone else's item", owner=commander)
    page = client_for(viewer).get(reverse("postmortems:action_items")).content.decode()
    assert f'aria-label="Start {theirs.reference}"' in page
    assert f'aria-label="Start {other.reference}"' not in page
    page = client_for(commander).get(reverse("postmortems:action_items")).content.decode()
    assert f'aria-label="Start {other.reference}"' in page  # a responder may change any


def test_row_permissions_cost_the_same_for_one_row_or_many(
    commander, viewer, make_resolved_incident
):
    incident = make_resolved_incident(declared_by=commander)
    secret = make_resolved_incident(declared_by=commander, restricted=True, title="Secret")
    client = client_for(commander)
    add(incident, commander, "One")
    add(secret, commander, "Secret one")
    client.get(reverse("postmortems:action_items"))  # warm the session and permission caches
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("postmortems:action_items"))
    for n in range(10):
        add(incident, commander, f"More {n}")
        add(secret, commander, f"Secret more {n}")
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("postmortems:action_items")).content.decode()
    assert len(many) == len(few)
    assert page.count('aria-label="Start ') == 22


def test_open_and_open_or_in_progress_are_different_filters(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    add(incident, commander, "Not started")
    add(incident, commander, "Being worked on", status="in_progress")
    add(incident, commander, "Finished", status="done")
    client = client_for(commander)
    url = reverse("postmortems:action_items")

    page = client.get(url).content.decode()  # the default: open or in progress
    assert "Not started" in page and "Being worked on" in page and "Finished" not in page
    assert page.count('value="open"') == 1  # no two options share a value

    page = client.get(url, {"status": "open"}).content.decode()
    assert "Not started" in page and "Being worked on" not in page and "Finished" not in page
    assert '<option value="open" selected>Open</option>' in page

    page = client.get(url, {"status": "active"}).content.decode()
    assert "Not started" in page and "Being worked on" in page and "Finished" not in page
    assert '<option value="active" selected>Open or in progress</option>' in page

    csv_text = b"".join(
        client.get(reverse("postmortems:action_items_csv"), {"status": "open"})
    ).decode()
    assert "Not started" in csv_text and "Being worked on" not in csv_text


def test_csv_times_are_in_the_viewers_zone_and_say_which(make_resolved_incident):
    tokyo = make_user("kenji", first_name="Kenji", time_zone="Asia/Tokyo")
    incident = make_resolved_incident(declared_by=tokyo)
    add(incident, tokyo, "Alert on pool saturation")
    response = client_for(tokyo).get(reverse("postmortems:action_items_csv"))
    [header, row] = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    created = header.index("created_at (Asia/Tokyo)")
    assert row[created].endswith("+09:00")
