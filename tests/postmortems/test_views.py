"""The pages, with htmx and as plain forms."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from postmortems import services
from postmortems.models import ActionItem, Postmortem, PostmortemStatus
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_postmortem_page_shows_sections_facts_and_timeline(postmortem, commander):
    response = client_for(commander).get(reverse("postmortems:detail", args=[postmortem.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Summary", "Customer impact", "Contributing factors", "Where we got lucky"):
        assert title in html
    assert "Time to acknowledge" in html
    assert "Error rate at <strong>12%</strong>" in html
    assert "Europe/London" in html or "GMT" in html or "BST" in html  # viewer's zone named


def test_create_from_the_incident_page_in_one_click(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    client = client_for(commander)
    response = client.post(reverse("postmortems:create", args=[incident.pk]))
    postmortem = Postmortem.objects.get(incident=incident)
    assert response.status_code == 302
    assert response["Location"] == reverse("postmortems:detail", args=[postmortem.pk])
    response = client.post(reverse("postmortems:create", args=[incident.pk]), **HX)
    assert response.status_code == 204
    assert response["HX-Redirect"].endswith(f"/postmortems/{postmortem.pk}/")


def test_viewers_cannot_create_or_edit(postmortem, viewer):
    client = client_for(viewer)
    assert client.get(reverse("postmortems:detail", args=[postmortem.pk])).status_code == 200
    url = reverse("postmortems:section_save", args=[postmortem.pk, "summary"])
    assert client.post(url, {"body": "x", "base_version": 0}).status_code == 403


def test_editing_a_section_in_place_with_htmx(postmortem, commander):
    client = client_for(commander)
    edit = client.get(reverse("postmortems:section_edit", args=[postmortem.pk, "lessons"]), **HX)
    assert edit.status_code == 200
    assert b"<textarea" in edit.content and b'name="base_version" value="0"' in edit.content
    save = client.post(
        reverse("postmortems:section_save", args=[postmortem.pk, "lessons"]),
        {"body": "Timeouts **must** be shorter than retries.", "base_version": 0},
        **HX,
    )
    assert save.status_code == 200
    assert b"<strong>must</strong>" in save.content
    assert b"<textarea" not in save.content


def test_editing_without_javascript(postmortem, commander):
    client = client_for(commander)
    page = client.get(reverse("postmortems:section_edit", args=[postmortem.pk, "lessons"]))
    assert page.status_code == 200 and b"<textarea" in page.content
    preview = client.post(
        reverse("postmortems:section_save", args=[postmortem.pk, "lessons"]),
        {"body": "*draft*", "base_version": 0, "preview": "1"},
    )
    assert preview.status_code == 200 and b"<em>draft</em>" in preview.content
    assert postmortem.sections.get(key="lessons").body == ""
    save = client.post(
        reverse("postmortems:section_save", args=[postmortem.pk, "lessons"]),
        {"body": "Saved without JS", "base_version": 0},
    )
    assert save.status_code == 302
    assert postmortem.sections.get(key="lessons").body == "Saved without JS"


def test_the_second_save_is_refused_with_the_other_persons_text(postmortem, commander, responder):
    url = reverse("postmortems:section_save", args=[postmortem.pk, "went_well"])
    first = client_for(commander).post(url, {"body": "Ivy's text", "base_version": 0}, **HX)
    assert first.status_code == 200
    second = client_for(responder).post(url, {"body": "Raj's text", "base_version": 0}, **HX)
    assert second.status_code == 422
    html = second.content.decode()
    assert "Ivy saved this section while you were editing" in html
    assert "Ivy&#x27;s text" in html or "Ivy's text" in html
    assert "Raj&#x27;s text" in html or "Raj's text" in html  # what Raj typed is kept
    assert 'name="base_version" value="1"' in html
    assert postmortem.sections.get(key="went_well").body == "Ivy's text"


def test_markdown_preview_is_sanitised(postmortem, commander):
    response = client_for(commander).post(
        reverse("postmortems:preview", args=[postmortem.pk]),
        {"body": "**bold** <script>alert(1)</script>"},
        **HX,
    )
    assert b"<strong>bold</strong>" in response.content
    assert b"<script" not in response.content


def test_review_and_publish_through_the_pages(postmortem, commander):
    reviewer = make_user("rev", first_name="Rita")
    client = client_for(commander)
    bad = client.post(reverse("postmortems:submit", args=[postmortem.pk]), {}, **HX)
    assert bad.status_code == 422 and b"field-error" in bad.content
    ok = client.post(
        reverse("postmortems:submit", args=[postmortem.pk]), {"reviewers": [reviewer.pk]}, **HX
    )
    assert ok.status_code == 200 and b"In review" in ok.content
    comment = client_for(reviewer).post(
        reverse("postmortems:comment_add", args=[postmortem.pk]),
        {"body": "What alerted first?", "section": "detection"},
        **HX,
    )
    assert comment.status_code == 200 and b"What alerted first?" in comment.content
    approved = client_for(reviewer).post(reverse("postmortems:approve", args=[postmortem.pk]))
    assert approved.status_code == 302
    published = client.post(reverse("postmortems:publish", args=[postmortem.pk]))
    assert published.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.PUBLISHED
    page = client.get(reverse("postmortems:detail", args=[postmortem.pk])).content.decode()
    assert "Published and read-only" in page and "Export PDF" in page
    assert reverse("postmortems:section_edit", args=[postmortem.pk, "summary"]) not in page


def test_action_item_from_the_incident_page_panel(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    client = client_for(commander)
    url = reverse("postmortems:incident_action_item_create", args=[incident.pk])
    bad = client.post(url, {"title": "", "item_type": "corrective"}, **HX)
    assert bad.status_code == 422 and b"This field is required" in bad.content
    ok = client.post(url, {"title": "Add a circuit breaker", "item_type": "preventive"}, **HX)
    assert ok.status_code == 200 and b"Add a circuit breaker" in ok.content
    assert ok["HX-Trigger"] == "timeline-refresh"
    plain = client.post(url, {"title": "Second", "item_type": "detective"})
    assert plain.status_code == 302
    assert ActionItem.objects.filter(incident=incident).count() == 2


def test_the_incident_panel_tag(commander, make_resolved_incident, rf):
    incident = make_resolved_incident(declared_by=commander)
    request = rf.get("/")
    request.user = commander
    html = Template("{% load postmortems %}{% incident_postmortem_panel incident user %}").render(
        Context({"incident": incident, "user": commander, "request": request})
    )
    assert "Create postmortem" in html and "Follow-ups" in html
    services.postmortem_create(incident=incident, actor=commander)
    html = Template("{% load postmortems %}{% incident_postmortem_panel incident user %}").render(
        Context({"incident": incident, "user": commander, "request": request})
    )
    assert "Draft postmortem" in html


def test_wont_do_without_reason_shows_the_field_error(postmortem, commander):
    item = services.action_item_create(
        incident=postmortem.incident, actor=commander, title="X", item_type="corrective"
    )
    url = reverse("postmortems:action_item_status", args=[item.pk])
    client = client_for(commander)
    bad = client.post(url, {"status": "wont_do", "reason": ""})
    assert bad.status_code == 422 and b"Say why this will not be done." in bad.content
    ok = client.post(url, {"status": "wont_do", "reason": "Superseded"}, **HX)
    assert ok.status_code == 200
    item.refresh_from_db()
    assert item.status == "wont_do"


@pytest.fixture
def dashboard_world(commander, make_resolved_incident):
    today = timezone.localdate()
    payments = make_team("Payments")
    edge = make_team("Edge")
    incident = make_resolved_incident(declared_by=commander)
    secret = make_resolved_incident(declared_by=commander, restricted=True, title="Secret")

    def item(title, *, team, status="open", due=None, priority=3, on=incident):
        created = services.action_item_create(
            incident=on, actor=commander, title=title, item_type="corrective",
            owner=commander, team=team, due_date=due, priority=priority,
        )  # fmt: skip
        if status != "open":
            services.action_item_set_status(
                item=created, actor=commander, status=status, reason="n/a"
            )
        return created

    item("Overdue", team=payments, due=today - dt.timedelta(days=3), priority=1)
    item("Due soon", team=payments, due=today + dt.timedelta(days=2))
    item("Later", team=edge, due=today + dt.timedelta(days=30))
    item("Done", team=payments, status="done")
    item("Dropped", team=edge, status="wont_do")
    item("Hidden", team=payments, on=secret, due=today - dt.timedelta(days=1))
    return payments, edge


def test_dashboard_filters_and_counts(dashboard_world, commander, viewer):
    payments, _edge = dashboard_world
    client = client_for(viewer)
    url = reverse("postmortems:action_items")
    page = client.get(url).content.decode()
    assert "Overdue" in page and "Due soon" in page and "Later" in page
    assert "Hidden" not in page and "Secret" not in page  # restricted stays restricted
    assert "Done</a>" not in page  # default: open items
    overdue = client.get(url, {"overdue": "1"}).content.decode()
    assert "Overdue" in overdue and "Later" not in overdue
    soon = client.get(url, {"due_soon": "1"}).content.decode()
    assert "Due soon" in soon and "Later" not in soon
    team = client.get(url, {"team": payments.pk, "status": ""}).content.decode()
    assert "Done" in team and "Later" not in team
    summaries = client.get(url).context["summaries"]
    by_team = {s.name: s for s in summaries}
    assert (by_team["Payments"].open, by_team["Payments"].overdue) == (2, 1)
    assert by_team["Payments"].done == 1
    assert by_team["Payments"].completion_rate == pytest.approx(1 / 3)
    assert by_team["Edge"].completion_rate == 0  # won't do is left out
    # The commander sees the restricted incident's item too.
    mine = client_for(commander).get(reverse("postmortems:my_action_items")).content.decode()
    assert "Hidden" in mine


def test_dashboard_htmx_swaps_only_the_results(dashboard_world, viewer):
    response = client_for(viewer).get(
        reverse("postmortems:action_items"), {"overdue": "1"}, HTTP_HX_TARGET="ai-results", **HX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="ai-results">')


def test_csv_export_respects_filters_and_visibility(dashboard_world, viewer):
    response = client_for(viewer).get(reverse("postmortems:action_items_csv"), {"status": ""})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    titles = {r["title"] for r in rows}
    assert titles == {"Overdue", "Due soon", "Later", "Done", "Dropped"}
    overdue = next(r for r in rows if r["title"] == "Overdue")
    assert overdue["overdue_days"] == "3" and overdue["priority"] == "P1"


def test_csv_cells_cannot_become_spreadsheet_formulas(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    services.action_item_create(
        incident=incident, actor=commander, title="=HYPERLINK(1)", item_type="corrective"
    )
    response = client_for(commander).get(reverse("postmortems:action_items_csv"))
    assert "'=HYPERLINK(1)" in b"".join(response.streaming_content).decode()


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_dashboard_query_count_does_not_grow_with_items(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    teams = [make_team(f"T{i}") for i in range(3)]
    owners = [make_user(f"owner{i}") for i in range(3)]

    def add(n):
        ActionItem.objects.bulk_create(
            ActionItem(
                incident=incident, title=f"Item {i}", item_type="corrective", owner=owners[i % 3],
                team=teams[i % 3], due_date=timezone.localdate(), created_at=timezone.now(),
            )
            for i in range(n)
        )  # fmt: skip

    client = client_for(commander)
    url = reverse("postmortems:action_items")
    add(5)
    client.get(url)  # warm caches (permissions)
    small = _queries(client, url)
    add(200)
    assert _queries(client, url) == small
    pm = services.postmortem_create(incident=incident, actor=commander)
    detail = reverse("postmortems:detail", args=[pm.pk])
    client.get(detail)
    assert _queries(client, detail) < 40
