"""The PDF, read back with pdftotext; the URL fetcher under attack; the export lifecycle."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading

import pytest
from django.test import Client
from django.urls import reverse

from incidents import services as incident_services
from postmortems import services
from postmortems.models import ExportState, PostmortemExport
from postmortems.pdf import (
    StaticOnlyFetcher,
    UnsafeURL,
    postmortem_pdf_html,
    render_html_to_pdf,
    static_path_for,
)
from postmortems.tasks import postmortem_export_render
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PDFTOTEXT = shutil.which("pdftotext")


@pytest.fixture(scope="session")
def pdftotext():
    if PDFTOTEXT is None:
        message = "pdftotext is missing: apt-get install -y poppler-utils"
        if os.environ.get("FIREBREAK_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    def read(pdf: bytes, tmp_path) -> str:
        path = tmp_path / "out.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            [PDFTOTEXT, "-layout", str(path), "-"], capture_output=True, check=True, text=True
        ).stdout

    return read


def publish(postmortem, actor):
    services.postmortem_submit_for_review(postmortem=postmortem, actor=actor, reviewers=[actor])
    services.postmortem_approve(postmortem=postmortem, actor=actor)
    services.postmortem_publish(postmortem=postmortem, actor=actor)
    postmortem.refresh_from_db()
    return postmortem


@pytest.fixture
def published(postmortem, commander):
    services.postmortem_section_save(
        postmortem=postmortem, section_key="contributing_factors", actor=commander,
        body="The deploy tool allowed a config change to skip the canary stage.", base_version=0,
    )  # fmt: skip
    services.postmortem_section_save(
        postmortem=postmortem, section_key="lessons", actor=commander,
        body="Canaries only help when nothing can bypass them.", base_version=0,
    )  # fmt: skip
    services.action_item_create(
        incident=postmortem.incident, actor=commander, title="Make canary stage mandatory",
        item_type="preventive", owner=commander, priority=1,
    )  # fmt: skip
    return publish(postmortem, commander)


def render_export(postmortem, actor) -> PostmortemExport:
    export = services.postmortem_export_request(postmortem=postmortem, actor=actor)
    assert postmortem_export_render(export.pk) == "ready"
    export.refresh_from_db()
    return export


def test_the_pdf_has_cover_sections_timeline_and_action_items(
    published, commander, pdftotext, tmp_path
):
    export = render_export(published, commander)
    assert export.state == ExportState.READY and export.pages >= 3
    text = pdftotext(bytes(export.pdf), tmp_path)
    assert published.incident.reference in text
    assert "SEV3" in text and "Checkout API, Payments" in text
    for title in ("Summary", "Customer impact", "Contributing factors", "Where we got lucky"):
        assert title in text
    assert "skip the canary stage" in text
    assert "Error rate at 12% on checkout." in text  # the chosen (pinned) timeline entry
    assert "Make canary stage mandatory" in text and "Preventive" in text
    assert "Page 2 of" in text  # running footer
    assert "Ivy" in text  # authors on the cover


def test_the_export_is_cached_until_the_postmortem_changes(published, commander):
    first = render_export(published, commander)
    again = services.postmortem_export_request(postmortem=published, actor=commander)
    assert again.pk == first.pk and again.state == ExportState.READY
    assert postmortem_export_render(first.pk) == "not claimed"  # a duplicate delivery
    services.postmortem_start_revision(postmortem=published, actor=commander)
    services.postmortem_section_save(
        postmortem=published, section_key="summary", actor=commander, body="New", base_version=0
    )
    published = publish(published, commander)
    second = services.postmortem_export_request(postmortem=published, actor=commander)
    assert second.pk != first.pk and second.state == ExportState.PENDING


def test_only_a_published_postmortem_exports(postmortem, commander):
    with pytest.raises(services.PostmortemRefused, match="Publish"):
        services.postmortem_export_request(postmortem=postmortem, actor=commander)


def test_the_page_shows_progress_then_the_download(
    published, commander, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(postmortem_export_render, "delay", lambda export_id: sent.append(export_id))
    client = Client()
    client.force_login(commander)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("postmortems:export", args=[published.pk]), HTTP_HX_REQUEST="true"
        )
    assert sent, "the render is queued for a worker after commit"
    assert (
        b"Waiting for a worker" in response.content and b'hx-trigger="every 1s"' in response.content
    )
    postmortem_export_render(sent[0])  # the worker
    status = client.get(
        reverse("postmortems:export_status", args=[published.pk]), HTTP_HX_REQUEST="true"
    )
    assert b"Download PDF" in status.content and b"every 1s" not in status.content
    download = client.get(reverse("postmortems:export_download", args=[published.pk]))
    assert download.status_code == 200 and bytes(download.content).startswith(b"%PDF")


# --- The URL fetcher -------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "file:///etc/passwd")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirect_server():
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


ATTACKS = [
    "file:///etc/passwd",
    "/etc/passwd",
    "../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "data:text/plain,c2VjcmV0",
]


@pytest.mark.parametrize("url", ATTACKS)
def test_the_fetcher_refuses_everything_but_static_files(url):
    from urllib.parse import urljoin

    from postmortems.pdf import BASE_URL

    with pytest.raises(UnsafeURL):
        static_path_for(urljoin(BASE_URL, url))
    with pytest.raises(ValueError):
        StaticOnlyFetcher().fetch(urljoin(BASE_URL, url))


def test_the_fetcher_serves_the_projects_own_stylesheet():
    from postmortems.pdf import BASE_URL

    response = StaticOnlyFetcher().fetch(BASE_URL + "static/postmortems/pdf.css")
    assert b"@page" in response.read()


def test_hostile_html_pulls_nothing_into_the_pdf(redirect_server, pdftotext, tmp_path):
    """Raw HTML, past the Markdown sanitiser: the fetcher alone must hold."""
    hostile = f"""<html><head>
      <link rel="stylesheet" href="file:///etc/passwd">
      <link rel="attachment" href="file:///etc/passwd">
      <style>@import url("file:///etc/hostname");
        body {{ background: url("{redirect_server}/bg") }}</style>
    </head><body>
      <p>Visible text</p>
      <img src="file:///etc/passwd"><img src="/etc/passwd"><img src="../../etc/passwd">
      <img src="http://169.254.169.254/latest/meta-data/iam">
      <img src="{redirect_server}/redirect-to-file">
      <object data="file:///etc/passwd"></object>
      <iframe src="file:///etc/passwd"></iframe>
      <a rel="attachment" href="file:///etc/passwd">attachment link</a>
      <a rel="attachment" href="{redirect_server}/attach">remote attachment</a>
    </body></html>"""
    pdf, pages, refused = render_html_to_pdf(hostile)
    text = pdftotext(pdf, tmp_path)
    assert "Visible text" in text
    assert "root:x:0:0" not in text and b"root:x:0:0" not in pdf
    assert b"/EmbeddedFile" not in pdf and b"/FileAttachment" not in pdf
    assert _Recorder.hits == []  # nothing on the network was even asked
    assert any("169.254.169.254" in u for u in refused)
    assert any(u.startswith("file:") for u in refused)


def test_markdown_attacks_in_a_postmortem_never_reach_the_pdf(
    postmortem, commander, redirect_server, pdftotext, tmp_path
):
    body = (
        "![a](file:///etc/passwd) ![b](/etc/passwd) ![c](http://169.254.169.254/) "
        f"![d]({redirect_server}/x) [attach](file:///etc/passwd) "
        '<a rel="attachment" href="file:///etc/passwd">att</a> '
        '<img src="file:///etc/passwd"> <link rel="stylesheet" href="file:///etc/passwd">'
    )
    services.postmortem_section_save(
        postmortem=postmortem, section_key="summary", actor=commander, body=body, base_version=0
    )
    incident_services.note_add(incident=postmortem.incident, author=commander, body=body)
    publish(postmortem, commander)
    html = postmortem_pdf_html(postmortem)
    assert "<img" not in html and 'rel="attachment"' not in html  # the sanitiser's layer
    export = render_export(postmortem, commander)
    pdf = bytes(export.pdf)
    assert b"root:x:0:0" not in pdf and b"/EmbeddedFile" not in pdf
    assert _Recorder.hits == []
    assert "root:x" not in pdftotext(pdf, tmp_path)


def test_a_render_failure_is_recorded_and_can_be_retried(published, commander, monkeypatch):
    import postmortems.pdf as pdf_module

    def boom(postmortem):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(pdf_module, "render_postmortem_pdf", boom)
    export = services.postmortem_export_request(postmortem=published, actor=commander)
    assert postmortem_export_render(export.pk) == "failed"
    export.refresh_from_db()
    assert export.state == ExportState.FAILED and export.error == "RuntimeError"
    monkeypatch.undo()
    again = services.postmortem_export_request(postmortem=published, actor=commander)
    assert again.pk == export.pk and again.state == ExportState.PENDING


def test_outsiders_never_get_a_restricted_pdf(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander, restricted=True)
    postmortem = publish(services.postmortem_create(incident=incident, actor=commander), commander)
    render_export(postmortem, commander)
    outsider = make_user("eve", groups=("Responders",))
    client = Client()
    client.force_login(outsider)
    for name in ("export_download", "export_status", "export", "detail"):
        method = client.post if name == "export" else client.get
        assert method(reverse(f"postmortems:{name}", args=[postmortem.pk])).status_code == 404


def test_an_earlier_published_revision_stays_downloadable(published, commander, viewer):
    first = render_export(published, commander)
    services.postmortem_start_revision(postmortem=published, actor=commander)
    page = client_for(viewer).get(reverse("postmortems:detail", args=[published.pk]))
    link = reverse("postmortems:export_download_earlier", args=[published.pk, first.pk])
    html = page.content.decode()
    assert f'href="{link}"' in html and "Revision 1 (PDF)" in html
    download = client_for(viewer).get(link)
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    assert "-postmortem-r1.pdf" in download["Content-Disposition"]


def test_the_revision_history_starts_with_the_pre_filled_text(postmortem, commander):
    services.postmortem_section_save(
        postmortem=postmortem, section_key="impact", actor=commander,
        body="Checkout failed for 12% of EU card payments.", base_version=0,
    )  # fmt: skip
    url = reverse("postmortems:section_revisions", args=[postmortem.pk, "impact"])
    html = client_for(commander).get(url).content.decode()
    assert "Version 1" in html and "Checkout failed for 12%" in html
    assert "Version 0" in html and "(pre-filled from the incident)" in html
    assert "Impact lasted" in html  # what the section said before anyone edited it


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
