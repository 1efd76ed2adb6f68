from __future__ import annotations

import feedparser
from django.urls import reverse

from incidents.statuspages.services import status_update_publish
from tests.statuspages.conftest import make_status_page


def test_a_feed_reader_reads_the_published_updates_newest_first(
    client, incident, commander, settings
):
    page = make_status_page("acme", title="Acme status")
    other = make_status_page("other")
    for status, message in (
        ("investigating", "Looking into **slow** checkout."),
        ("identified", "Found it: a bad deploy."),
    ):
        status_update_publish(
            incident=incident,
            pages=[page],
            status=status,
            message=message,
            title="Slow checkout",
            actor=commander,
        )
    status_update_publish(
        incident=incident, pages=[other], status="monitoring", message="Only on the other page",
        title="Other title", actor=commander,
    )  # fmt: skip
    response = client.get(reverse("status:feed", args=["acme"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Acme status"
    titles = [e.title for e in feed.entries]
    assert titles == ["Slow checkout: Identified", "Slow checkout: Investigating"]
    assert "<strong>slow</strong>" in feed.entries[1].summary
    assert all("Only on the other page" not in e.summary for e in feed.entries)
    assert feed.entries[0].link.startswith(settings.SITE_URL + "/status/acme/#update-")
    assert len({e.id for e in feed.entries}) == 2


def test_an_empty_feed_is_still_a_valid_feed(client, db):
    make_status_page("quiet", title="Quiet")
    feed = feedparser.parse(client.get(reverse("status:feed", args=["quiet"])).content)
    assert not feed.bozo and feed.feed.title == "Quiet" and feed.entries == []
