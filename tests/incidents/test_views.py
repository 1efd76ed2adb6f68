from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import Incident, IncidentStatus, TimelineKind
from tests.factories import make_incident, make_user, severity

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ivy_client(commander):
    client = Client()
    client.force_login(commander)
    return client


def test_declaring_in_one_form_lands_on_the_incident_page(ivy_client, commander, make_service):
    checkout = make_service("Checkout")
    response = ivy_client.post(
        reverse("incidents:declare"),
        {
            "title": "Checkout returns 502",
            "severity": severity("SEV1").pk,
            "detection_source": "customer_report",
            "services": [checkout.pk],
        },
    )
    incident = Incident.objects.get()
    assert response["Location"] == reverse("incidents:detail", kwargs={"pk": incident.pk})
    page = ivy_client.get(response["Location"]).content.decode()
    assert "Checkout returns 502" in page
    roles = page.split('id="roles-live"')[1].split("</ul>")[0]
    assert "Incident commander" in roles and "Ivy" in roles
    assert incident.get_detection_source_display() == "Customer report"


def test_the_declare_form_shows_each_severity_definition(ivy_client):
    page = ivy_client.get(reverse("incidents:declare")).content.decode()
    for sev in ("SEV1", "SEV2", "SEV3", "SEV4"):
        assert severity(sev).description in page


def test_declare_form_errors_sit_next_to_their_fields_and_nothing_is_saved(ivy_client):
    response = ivy_client.post(
        reverse("incidents:declare"),
        {"title": "   ", "detection_source": "telepathy", "impact_started_at": "2999-01-01T00:00"},
    )
    assert response.status_code == 422
    form = response.context["form"]
    assert form.errors["title"] and form.errors["severity"] and form.errors["detection_source"]
    assert "Impact cannot start in the future." in form.errors["impact_started_at"]
    assert 'class="field-error"' in response.content.decode()
    assert Incident.objects.count() == 0


def test_a_refused_transition_says_why_in_place(ivy_client, incident):
    response = ivy_client.post(
        reverse("incidents:status", kwargs={"pk": incident.pk}), {"to_status": "closed"}, **HTMX
    )
    assert response.status_code == 422
    assert "cannot move straight to closed" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING


def test_an_htmx_action_returns_the_new_state_and_asks_the_timeline_to_refresh(
    ivy_client, incident
):
    response = ivy_client.post(
        reverse("incidents:status", kwargs={"pk": incident.pk}), {"to_status": "monitoring"}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert '<div id="status-live" hx-swap-oob="true">' in body
    assert "status-monitoring" in body and "Mitigated" in body
    # Other forms are not re-rendered, so nothing someone is typing there is lost.
    assert "<textarea" not in body and 'id="task-form"' not in body
    assert "timeline-refresh" in response["HX-Trigger"]


def test_plain_form_posts_redirect_back_to_the_page(ivy_client, incident):
    response = ivy_client.post(
        reverse("incidents:task_add", kwargs={"pk": incident.pk}),
        {"title": "Roll back", "owner": ""},
    )
    assert response.status_code == 302
    assert incident.tasks.get().title == "Roll back"


def test_a_task_without_a_title_is_refused_with_a_field_error(ivy_client, incident):
    response = ivy_client.post(
        reverse("incidents:task_add", kwargs={"pk": incident.pk}), {"title": " "}, **HTMX
    )
    assert response.status_code == 422
    assert "A task needs a title." in response.content.decode()
    assert incident.tasks.count() == 0


def test_the_poll_answers_no_content_while_nothing_changes(ivy_client, incident):
    incident.refresh_from_db()
    newest = incident.timeline.order_by("-pk").first().pk
    url = reverse("incidents:timeline_poll", kwargs={"pk": incident.pk})
    quiet = ivy_client.get(url, {"rev": incident.revision, "after": newest}, **HTMX)
    assert quiet.status_code == 204 and quiet.content == b""

    services.note_add(incident=incident, author=incident.declared_by, body="Found the *cause*")
    busy = ivy_client.get(url, {"rev": incident.revision, "after": newest, "avail": "open"}, **HTMX)
    body = busy.content.decode()
    assert busy.status_code == 200
    assert "Found the <em>cause</em>" in body
    assert body.count('class="entry ') == 1  # only the new entry, not the whole timeline
    assert 'hx-swap-oob="afterbegin:#timeline-entries"' in body
    # The poll never replaces a form: half-typed text in the sidebar survives it.
    assert "<textarea" not in body and '<input type="text"' not in body


def test_the_poll_respects_the_kind_filter(ivy_client, incident):
    incident.refresh_from_db()
    newest = incident.timeline.order_by("-pk").first().pk
    services.task_add(incident=incident, actor=incident.declared_by, title="Hidden by filter")
    response = ivy_client.get(
        reverse("incidents:timeline_poll", kwargs={"pk": incident.pk}),
        {"rev": 0, "after": newest, "kind": "note"},
        **HTMX,
    )
    assert "Hidden by filter" not in response.content.decode().split("incident-header")[0]


def test_the_poll_rejects_garbage_cursors(ivy_client, incident):
    url = reverse("incidents:timeline_poll", kwargs={"pk": incident.pk})
    assert ivy_client.get(url, {"rev": "x", "after": "1"}).status_code == 400


def test_a_long_timeline_is_paged_and_older_entries_load_on_request(ivy_client, incident, settings):
    settings.TIMELINE_PAGE_SIZE = 10
    for n in range(25):
        services.note_add(incident=incident, author=incident.declared_by, body=f"note number {n}")
    page = ivy_client.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert "note number 24" in page and "note number 10" not in page
    assert "Show older entries" in page
    oldest_shown = incident.timeline.order_by("-pk")[9].pk
    older = ivy_client.get(
        reverse("incidents:timeline", kwargs={"pk": incident.pk}), {"before": oldest_shown}, **HTMX
    ).content.decode()
    assert "note number 14" in older and "note number 15" not in older


def test_timeline_filters_by_kind(ivy_client, incident):
    services.note_add(incident=incident, author=incident.declared_by, body="a note")
    services.task_add(incident=incident, actor=incident.declared_by, title="a task")
    page = ivy_client.get(
        reverse("incidents:detail", kwargs={"pk": incident.pk}), {"kind": "task"}
    ).content.decode()
    timeline = page.split('id="timeline-entries"')[1].split("</ol>")[0]
    assert "a task" in timeline and "a note" not in timeline


def test_pinned_entries_show_as_key_moments(ivy_client, incident):
    entry = services.note_add(incident=incident, author=incident.declared_by, body="Rolled back")
    response = ivy_client.post(
        reverse("incidents:entry_pin", kwargs={"pk": incident.pk, "entry_id": entry.pk}),
        {"pinned": "1"},
        **HTMX,
    )
    assert response.status_code == 200
    key_moments = response.content.decode().split('class="key-moments"')[1].split("</ol>")[0]
    assert "Rolled back" in key_moments


def test_times_are_shown_in_the_viewers_zone_with_the_zone_named(incident):
    chicago = make_user("raj2", time_zone="America/Chicago")
    client = Client()
    client.force_login(chicago)
    page = client.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert "Times in America/Chicago" in page
    assert " CST</time>" in page or " CDT</time>" in page


def test_next_update_due_and_overdue_are_shown(ivy_client, commander):
    incident = make_incident(declared_by=commander, severity_name="SEV1")
    page = ivy_client.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert "Next stakeholder update due in 29 min" in page or "due in 30 min" in page
    Incident.objects.filter(pk=incident.pk).update(
        next_update_due_at=timezone.now() - timedelta(minutes=12, seconds=5)
    )
    page = ivy_client.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert "Stakeholder update overdue by 12 min" in page
    assert "update-due overdue" in page


def test_list_filters_search_and_pages(ivy_client, commander, make_service, settings):
    settings.INCIDENTS_PAGE_SIZE = 2
    search = make_service("Search")
    make_incident(declared_by=commander, title="Search is slow", services_=[search])
    make_incident(declared_by=commander, title="Login broken", severity_name="SEV1")
    resolved = make_incident(declared_by=commander, title="Old DNS outage")
    services.incident_transition(incident=resolved, actor=commander, to_status="resolved")
    url = reverse("incidents:list")
    assert "3 incidents" in ivy_client.get(url).content.decode()
    assert "Page 1 of 2" in ivy_client.get(url).content.decode()
    assert "Search is slow" in ivy_client.get(url, {"service": search.pk}).content.decode()
    only_open = ivy_client.get(url, {"status": "open"}).content.decode()
    assert "2 incidents" in only_open and "Old DNS outage" not in only_open
    found = ivy_client.get(url, {"q": "login"}).content.decode()
    assert "Login broken" in found and "1 incident" in found
    sev1 = ivy_client.get(url, {"severity": severity("SEV1").pk}).content.decode()
    assert "Login broken" in sev1 and "Search is slow" not in sev1
    fragment = ivy_client.get(
        url, {"q": "dns"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident-results"
    )
    assert fragment.content.decode().lstrip().startswith('<div id="incident-results">')


def test_mine_lists_only_incidents_where_i_hold_a_role(commander, responder):
    make_incident(declared_by=commander, title="Ivy's incident")
    make_incident(declared_by=responder, title="Raj's incident")
    client = Client()
    client.force_login(responder)
    page = client.get(reverse("incidents:list"), {"mine": "on"}).content.decode()
    assert "Raj&#x27;s incident" in page and "Ivy&#x27;s incident" not in page


def test_home_shows_open_incidents_now(ivy_client, commander):
    make_incident(declared_by=commander, title="Payments down", severity_name="SEV1")
    done = make_incident(declared_by=commander, title="Fixed thing")
    services.incident_transition(incident=done, actor=commander, to_status="resolved")
    page = ivy_client.get(reverse("home")).content.decode()
    assert "1 open incident" in page and "Payments down" in page and "Fixed thing" not in page


def test_milestone_correction_errors_show_in_the_form(ivy_client, incident):
    response = ivy_client.post(
        reverse("incidents:milestone", kwargs={"pk": incident.pk}),
        {"milestone": "detected_at", "value": "not a date", "reason": ""},
        **HTMX,
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert (
        "Enter a valid date/time." in body and "Say why the milestone is being corrected." in body
    )
    assert not incident.timeline.filter(kind=TimelineKind.MILESTONE).exists()


def test_editing_details_from_a_stale_page_shows_the_other_persons_text(
    ivy_client, incident, responder
):
    services.incident_update_details(
        incident=incident,
        actor=responder,
        title="Raj's title",
        summary="Raj's summary",
        services=[],
        incident_type=None,
        details_version=incident.details_version,
    )
    response = ivy_client.post(
        reverse("incidents:details", kwargs={"pk": incident.pk}),
        {"title": "Ivy's title", "summary": "Ivy's", "details_version": 0},
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert "Raj changed this while you were editing" in body
    assert "Raj&#x27;s summary" in body
    assert "Ivy&#x27;s" in body  # what Ivy typed is not lost


def test_teams_page_lists_members_and_services(ivy_client, commander, make_team, make_service):
    team = make_team("Payments", members=[commander])
    make_service("Checkout", team=team)
    page = ivy_client.get(reverse("team_list")).content.decode()
    assert "Payments" in page and "Ivy" in page and "Checkout" in page


def test_the_admin_incident_list_hides_restricted_incidents_too(restricted_incident, make_user):
    staff = make_user("stan", is_staff=True, groups=("Admins",))
    client = Client()
    client.force_login(staff)
    make_incident(declared_by=staff, title="Open for all")
    response = client.get("/admin/incidents/incident/")
    page = response.content.decode()
    assert response.status_code == 200 and "Open for all" in page
    assert "Suspicious staff logins" not in page


def test_an_outsider_polling_a_restricted_incident_with_its_revision_gets_404(
    restricted_incident, viewer
):
    restricted_incident.refresh_from_db()
    client = Client()
    client.force_login(viewer)
    url = reverse("incidents:timeline_poll", kwargs={"pk": restricted_incident.pk})
    for _ in range(2):  # second time from the cached state
        response = client.get(url, {"rev": restricted_incident.revision, "after": 0})
        assert response.status_code == 404


def test_losing_read_access_takes_effect_at_once(
    incident, viewer, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(viewer)
    url = reverse("incidents:detail", kwargs={"pk": incident.pk})
    assert client.get(url).status_code == 200  # permissions now cached
    with django_capture_on_commit_callbacks(execute=True):
        viewer.groups.clear()
    assert client.get(url).status_code == 404


def test_people_added_later_appear_in_the_role_picker(ivy_client, incident):
    ivy_client.get(reverse("incidents:detail", kwargs={"pk": incident.pk}))
    make_user("newcomer", first_name="Nadia")
    page = ivy_client.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert ">Nadia</option>" in page


def test_when_an_incident_resolves_watchers_get_the_whole_sidebar(ivy_client, incident):
    incident.refresh_from_db()
    url = reverse("incidents:timeline_poll", kwargs={"pk": incident.pk})
    rev = incident.revision
    services.incident_transition(
        incident=incident, actor=incident.declared_by, to_status="resolved"
    )
    body = ivy_client.get(url, {"rev": rev, "after": 0, "avail": "open"}, **HTMX).content.decode()
    # Resolved incidents take no severity changes: the form must go for watchers too.
    assert 'aria-label="Incident controls" hx-swap-oob="true"' in body
    assert 'id="severity-form"' not in body
    assert "avail=resolved" in body


def test_a_pin_reaches_entries_watchers_already_have(ivy_client, incident):
    incident.refresh_from_db()
    entry = services.note_add(incident=incident, author=incident.declared_by, body="Root cause")
    incident.refresh_from_db()
    rev = incident.revision
    services.timeline_entry_set_pinned(
        incident=incident, actor=incident.declared_by, entry_id=entry.pk, pinned=True
    )
    url = reverse("incidents:timeline_poll", kwargs={"pk": incident.pk})
    body = ivy_client.get(
        url, {"rev": rev, "after": entry.pk, "avail": "open"}, **HTMX
    ).content.decode()
    assert (
        f'<li id="entry-{entry.pk}" class="entry entry-note entry-pinned" hx-swap-oob="true">'
        in body
    )


def test_a_stale_severity_change_is_refused_and_keeps_the_reason(ivy_client, incident, responder):
    services.incident_change_severity(incident=incident, actor=responder, severity=severity("SEV1"))
    response = ivy_client.post(
        reverse("incidents:severity", kwargs={"pk": incident.pk}),
        {
            "severity": severity("SEV3").pk,
            "reason": "looks minor",
            "from_severity": severity("SEV2").pk,
        },
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert "Someone else changed the severity to SEV1" in body
    assert 'value="looks minor"' in body
    incident.refresh_from_db()
    assert incident.severity.name == "SEV1"


def test_a_stale_status_click_is_refused_next_to_the_buttons(ivy_client, incident, responder):
    services.incident_transition(incident=incident, actor=responder, to_status="resolved")
    response = ivy_client.post(
        reverse("incidents:status", kwargs={"pk": incident.pk}),
        {"to_status": "investigating", "from_status": "identified"},
        **HTMX,
    )
    assert response.status_code == 422
    status_live = response.content.decode().split('id="status-live"')[1].split("</div>\n</div>")[0]
    assert "Someone else changed the status to resolved" in status_live
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_an_expired_session_sends_the_browser_to_sign_in_not_into_the_timeline(incident):
    url = reverse("incidents:timeline_poll", kwargs={"pk": incident.pk})
    response = Client().get(
        url,
        {"rev": 0},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/incidents/{incident.pk}/?kind=note",
    )
    assert response.status_code == 200
    assert (
        response["HX-Redirect"]
        == f"/accounts/login/?next=%2Fincidents%2F{incident.pk}%2F%3Fkind%3Dnote"
    )


def test_permission_refusals_explain_themselves(viewer):
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse("incidents:declare"))
    assert response.status_code == 403
    assert "Only responders can declare incidents." in response.content.decode()


def test_an_admin_edit_to_a_severity_shows_on_the_next_page(
    ivy_client, incident, django_capture_on_commit_callbacks
):
    url = reverse("incidents:detail", kwargs={"pk": incident.pk})
    assert "SEV2 · Major" in ivy_client.get(url).content.decode()  # now cached
    sev = severity("SEV3")
    with django_capture_on_commit_callbacks(execute=True):
        sev.label = "Moderate"
        sev.save()
    assert "SEV3 · Moderate" in ivy_client.get(url).content.decode()
