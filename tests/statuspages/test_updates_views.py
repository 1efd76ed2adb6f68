"""Publishing and setting component statuses from the incident page."""

from __future__ import annotations

from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.models import TimelineKind
from incidents.statuspages.models import (
    ComponentStatusInterval,
    StatusPage,
    StatusUpdate,
    StatusUpdateTemplate,
)
from tests.statuspages.conftest import make_component, make_status_page


def _publish_url(incident) -> str:
    return reverse("status:incident_publish", args=[incident.pk])


def test_the_incident_page_offers_the_commander_the_status_page_forms(client, incident, commander):
    make_status_page("acme", title="Acme status")
    client.force_login(commander)
    text = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'id="status-panel"' in text and "Public update" in text and "Preview" in text


def test_others_see_what_was_published_but_nothing_editable(client, incident, viewer, commander):
    page = make_status_page("acme", title="Acme status")
    client.force_login(commander)
    client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "Slow", "status": "investigating", "message": "m",
         "action": "publish"},
    )  # fmt: skip
    client.force_login(viewer)
    text = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    panel = text[text.index('id="status-panel"') :]
    panel = panel[: panel.index("</section>")]
    assert "Acme status" in panel and "Slow" in panel
    assert "<form" not in panel


def test_preview_shows_the_rendered_update_and_publishes_nothing(client, incident, commander):
    page = make_status_page("acme", title="Acme status")
    client.force_login(commander)
    response = client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "Slow checkout", "status": "identified",
         "message": "We **found** it", "action": "preview"},
    )  # fmt: skip
    text = response.content.decode()
    assert response.status_code == 200
    assert "Preview" in text and "<strong>found</strong>" in text and 'value="publish"' in text
    assert not StatusUpdate.objects.exists()


def test_publishing_puts_the_update_on_the_page_and_the_timeline(client, incident, commander):
    page = make_status_page("acme", title="Acme status")
    client.force_login(commander)
    response = client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "Slow checkout", "status": "identified",
         "message": "We found it", "action": "publish"},
    )  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == reverse("incidents:detail", args=[incident.pk])
    update = StatusUpdate.objects.get()
    assert incident.timeline.filter(kind=TimelineKind.UPDATE, data__status_update=update.pk)
    public = client.get(reverse("status:page", args=["acme"])).content.decode()
    assert "Slow checkout" in public and "We found it" in public


def test_publishing_with_htmx_answers_with_the_panel_and_refreshes_the_timeline(
    client, incident, commander
):
    page = make_status_page("acme", title="Acme status")
    client.force_login(commander)
    response = client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "Slow", "status": "investigating", "message": "m",
         "action": "publish"},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="status-panel"')
    assert "Published to Acme status" in response.content.decode()
    assert "timeline-refresh" in response["HX-Trigger"]


def test_bad_input_is_refused_with_field_errors_and_nothing_written(client, incident, commander):
    page = make_status_page("acme")
    client.force_login(commander)
    response = client.post(
        _publish_url(incident),
        {"pages": [], "status": "exploded", "message": "", "action": "publish"},
    )
    text = response.content.decode()
    assert response.status_code == 422
    assert "Choose at least one status page" in text and "Write a message" in text
    response = client.post(
        _publish_url(incident),
        {"pages": [page.pk], "status": "investigating", "message": "m", "action": "publish"},
    )
    assert response.status_code == 422 and "public title" in response.content.decode()
    assert not StatusUpdate.objects.exists()


def test_a_template_fills_the_message(client, incident, commander):
    make_status_page("acme")
    StatusUpdateTemplate.objects.create(
        name="Investigating", status="investigating", message="We are looking into it."
    )
    template = StatusUpdateTemplate.objects.create(
        name="Monitoring", status="monitoring", message="A fix is out; we are watching."
    )
    client.force_login(commander)
    text = client.get(
        reverse("status:incident_compose", args=[incident.pk]) + f"?template={template.pk}"
    ).content.decode()
    assert "A fix is out; we are watching." in text
    assert '<option value="monitoring" selected>' in text
    # "Start from" still names the template used, not the first one in the list.
    assert f'<option value="{template.pk}" selected>Monitoring</option>' in text


def test_setting_component_statuses_from_the_incident(client, incident, commander):
    page = make_status_page("acme")
    linked = make_component(page, "Checkout", services=list(incident.services.all()))
    other = make_component(page, "Search")
    client.force_login(commander)
    text = client.get(reverse("status:incident_compose", args=[incident.pk])).content.decode()
    assert text.index("Checkout") < text.index("Search")  # linked components first
    response = client.post(
        reverse("status:incident_components", args=[incident.pk]),
        {f"component-{linked.pk}": "partial_outage", f"component-{other.pk}": "operational"},
    )
    assert response.status_code == 302
    linked.refresh_from_db()
    other.refresh_from_db()
    assert linked.status == "partial_outage" and other.status == "operational"
    assert ComponentStatusInterval.objects.get(component=linked).incident == incident
    assert incident.timeline.filter(kind=TimelineKind.STATUS, data__component=linked.pk).exists()


def test_a_bad_component_status_changes_nothing(client, incident, commander):
    page = make_status_page("acme")
    one = make_component(page, "One")
    two = make_component(page, "Two")
    client.force_login(commander)
    response = client.post(
        reverse("status:incident_components", args=[incident.pk]),
        {f"component-{one.pk}": "major_outage", f"component-{two.pk}": "on-fire"},
    )
    assert response.status_code == 422
    one.refresh_from_db()
    assert one.status == "operational" and not ComponentStatusInterval.objects.exists()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.dictionaries(
        st.sampled_from(["pages", "title", "status", "message", "action"]),
        st.one_of(st.text(max_size=300), st.lists(st.text(max_size=5), max_size=3)),
    )
)
def test_publish_never_answers_500(client, incident, commander, data):
    page, _ = StatusPage.objects.get_or_create(slug="fuzz", defaults={"title": "Fuzz"})
    if "pages" in data and isinstance(data["pages"], list):
        data["pages"] = [*data["pages"], str(page.pk)]
    client.force_login(commander)
    response = client.post(_publish_url(incident), data)
    assert response.status_code in (200, 302, 422)


def test_the_incident_page_costs_the_same_queries_however_many_pages_and_updates(
    client, incident, commander
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(commander)
    url = reverse("incidents:detail", args=[incident.pk])

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    page = make_status_page("one")
    make_component(page, "C", group="G", services=list(incident.services.all()))
    client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "t", "status": "investigating", "message": "m",
         "action": "publish"},
    )  # fmt: skip
    client.get(url)
    small = count()
    pages = [make_status_page(f"p{n}") for n in range(5)]
    for p in pages:
        for k in range(6):
            make_component(p, f"C{k}", group=f"G{k % 2}", services=list(incident.services.all()))
    for _ in range(6):
        client.post(
            _publish_url(incident),
            {"pages": [p.pk for p in pages], "title": "t", "status": "identified",
             "message": "m", "action": "publish"},
        )  # fmt: skip
    assert count() == small


def test_a_resolved_incident_still_shown_as_active_is_pointed_out(client, incident, commander):
    from incidents.services import incident_transition

    page = make_status_page("acme", title="Acme status")
    client.force_login(commander)
    client.post(
        _publish_url(incident),
        {"pages": [page.pk], "title": "t", "status": "investigating", "message": "m",
         "action": "publish"},
    )  # fmt: skip
    incident_transition(incident=incident, actor=commander, to_status="resolved")
    text = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Still shown as investigating on Acme status" in text
