"""The published postmortem as a PDF (WeasyPrint), rendered in a Celery worker.

Rendering is locked down: the URL fetcher serves only the project's own static files
(looked up through the staticfiles finders, never a path built from the URL), so Markdown
or a crafted template cannot pull local files (file://, a relative /etc path), internal
network addresses (http://169.254.169.254/), data: URLs or redirects into the PDF, and
`<a rel=attachment>` cannot embed anything. Every refusal is logged and rendering carries
on without the resource.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import zoneinfo
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from postmortems.facts import incident_facts
from postmortems.models import Postmortem
from postmortems.selectors import postmortem_action_items, postmortem_sections

log = logging.getLogger(__name__)

# Relative URLs in the document resolve against this; only its static prefix is served.
BASE_URL = "https://firebreak.invalid/"


class UnsafeURL(ValueError):
    """A URL the PDF renderer refuses to fetch."""


def static_path_for(url: str) -> str:
    """The static file path a URL names, or UnsafeURL. Only BASE_URL + STATIC_URL."""
    parts = urlsplit(url)
    base = urlsplit(BASE_URL)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        raise UnsafeURL(f"only the project's static files may be fetched, not {url!r}")
    path = unquote(parts.path)
    static_prefix = "/" + settings.STATIC_URL.strip("/") + "/"
    if not path.startswith(static_prefix):
        raise UnsafeURL(f"not a static file: {url!r}")
    relative = path[len(static_prefix) :]
    if not relative or "\\" in relative or "\x00" in relative:
        raise UnsafeURL(f"not a static file: {url!r}")
    if any(segment in ("", ".", "..") for segment in relative.split("/")):
        raise UnsafeURL(f"path traversal refused: {url!r}")
    if posixpath.normpath(relative) != relative:
        raise UnsafeURL(f"path traversal refused: {url!r}")
    return relative


class StaticOnlyFetcher(URLFetcher):
    """Serves static files from the finders; refuses everything else, never redirects."""

    def __init__(self):
        super().__init__(allow_redirects=False, allowed_protocols=(), fail_on_errors=False)
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        try:
            relative = static_path_for(url)
            found = finders.find(relative)
            if not found:
                raise UnsafeURL(f"no such static file: {relative!r}")
        except UnsafeURL:
            self.refused.append(url)
            log.warning("PDF render refused to fetch %r", url[:200])
            raise
        with open(found, "rb") as handle:
            body = handle.read()
        mime = mimetypes.guess_type(found)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body, {"Content-Type": mime})


def postmortem_pdf_html(postmortem: Postmortem) -> str:
    postmortem = (
        Postmortem.objects.select_related("incident", "incident__severity", "owner", "published_by")
        .prefetch_related("authors")
        .get(pk=postmortem.pk)
    )
    incident = postmortem.incident
    services = list(incident.services.all())
    reviewers = list(postmortem.reviewers.select_related("user"))
    with timezone.override(zoneinfo.ZoneInfo("UTC")):
        return render_to_string(
            "postmortems/pdf/postmortem.html",
            {
                "postmortem": postmortem,
                "incident": incident,
                "services": services,
                "facts": incident_facts(incident, services),
                "sections": postmortem_sections(postmortem=postmortem),
                "timeline_items": list(
                    postmortem.timeline_items.select_related("source_entry__actor")
                ),
                "action_items": postmortem_action_items(postmortem=postmortem),
                "authors": list(postmortem.authors.all()),
                "reviewers": reviewers,
                "generated_at": timezone.now(),
                "static_base": BASE_URL.rstrip("/") + settings.STATIC_URL,
            },
        )


def render_html_to_pdf(html: str) -> tuple[bytes, int, list[str]]:
    """(pdf bytes, page count, refused URLs). Public for the URL-fetcher tests."""
    fetcher = StaticOnlyFetcher()
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).render()
    pdf = document.write_pdf(attachments=[])
    return pdf, len(document.pages), fetcher.refused


def render_postmortem_pdf(postmortem: Postmortem) -> tuple[bytes, int]:
    pdf, pages, refused = render_html_to_pdf(postmortem_pdf_html(postmortem))
    if refused:
        log.info("PDF of postmortem %s: refused %d URL(s)", postmortem.pk, len(refused))
    return pdf, pages
