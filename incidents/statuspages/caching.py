"""Rendered status pages kept in the cache, ready to send.

Status pages are hit hardest exactly when something is broken, so each rendering (page,
history pages, JSON summary, badge, feed) is stored once as the finished body plus the
headers a conditional GET needs, under one key. `StatusPageCacheMiddleware` answers public
pages from that key before sessions, authentication or the database are touched; the views
fill it. Every publish, status change or maintenance change drops the page's keys
(`page_cache_forget`), so a reader sees a change on the next request; the short TTL only
covers what changes with the clock alone (the day rolling over in the history bars).

Each page also has a generation in the cache, bumped by every forget. A view reads it
before it loads the page and stores it in the entry; an entry is used only while its
generation is the current one (read in the same round trip). So a rendering that was
still in progress when the page changed (made internal, say) is never served, though it
finished and was stored after the forget.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date

log = logging.getLogger(__name__)

CACHE_TTL = 60
# History pages beyond this are rendered on demand: nobody stampedes page 7 of the history.
HISTORY_PAGES_CACHED = 5
VARIANTS = ("page", "summary.json", "badge.svg", "feed.atom") + tuple(
    f"history:{n}" for n in range(1, HISTORY_PAGES_CACHED + 1)
)


def cache_key(slug: str, variant: str) -> str:
    return f"statuspage:{slug}:{variant}"


def _generation_key(slug: str) -> str:
    return f"statuspage-generation:{slug}"


def page_generation(slug: str) -> int | None:
    """Read before the page is loaded; pass to `cached_or_render`."""
    try:
        return cache.get(_generation_key(slug))
    except Exception as exc:
        log.warning("Status page cache unavailable: %s", exc)
        return None


def page_cache_forget(page) -> None:
    keys = [cache_key(page.slug, v) for v in VARIANTS]
    try:
        # First the generation (renderings in progress will not be served), then the keys.
        key = _generation_key(page.slug)
        cache.add(key, 0, None)
        try:
            cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, None)
        cache.delete_many(keys)
    except Exception as exc:  # entries expire within CACHE_TTL anyway
        log.warning("Could not drop cached status page %s: %s", page.slug, exc)


# Bodies by ETag, in this process: a hit then costs one small cache read (the entry's
# headers), not the transfer of the whole page from Redis. Content-addressed, so an entry
# can never be paired with a stale body.
_LOCAL_BODIES: OrderedDict[str, bytes] = OrderedDict()
_LOCAL_BODIES_MAX = 64
_local_lock = threading.Lock()


def _body_key(etag: str) -> str:
    return f"statuspage-body:{etag.strip(chr(34))}"


def _local_body(etag: str) -> bytes | None:
    with _local_lock:
        body = _LOCAL_BODIES.get(etag)
        if body is not None:
            _LOCAL_BODIES.move_to_end(etag)
        return body


def _remember_body(etag: str, body: bytes) -> None:
    with _local_lock:
        _LOCAL_BODIES[etag] = body
        _LOCAL_BODIES.move_to_end(etag)
        while len(_LOCAL_BODIES) > _LOCAL_BODIES_MAX:
            _LOCAL_BODIES.popitem(last=False)


def cache_get(slug: str, variant: str, *, with_body: bool = True) -> dict | None:
    """The stored entry (headers, and the body unless `with_body` is false), or None
    when there is none of the page's current generation."""
    key, generation_key = cache_key(slug, variant), _generation_key(slug)
    try:
        found = cache.get_many([key, generation_key])
    except Exception as exc:  # the cache is an optimisation: render instead
        log.warning("Status page cache unavailable: %s", exc)
        return None
    meta = found.get(key)
    if meta is not None and meta.get("generation") != found.get(generation_key):
        return None  # rendered from the page as it was before a change
    if meta is None or not with_body:
        return meta
    body = _body_for(meta["etag"])
    return None if body is None else {**meta, "body": body}


def _body_for(etag: str) -> bytes | None:
    """The body with this ETag: from this process, else from the cache (content-addressed,
    so it is the body of exactly that rendering), else None."""
    body = _local_body(etag)
    if body is None:
        try:
            body = cache.get(_body_key(etag))
        except Exception as exc:
            log.warning("Status page cache unavailable: %s", exc)
            return None
        if body is not None:
            _remember_body(etag, body)
    return body


def cache_set(slug: str, variant: str, entry: dict, *, generation: int | None) -> None:
    """Store `entry`, rendered from the page as loaded under `generation`."""
    meta = {k: v for k, v in entry.items() if k != "body"}
    meta["generation"] = generation
    try:
        # The body outlives its entry, so an entry read just before expiry finds its body.
        cache.set(_body_key(entry["etag"]), entry["body"], CACHE_TTL * 2)
        cache.set(cache_key(slug, variant), meta, CACHE_TTL)
    except Exception as exc:
        log.warning("Status page cache unavailable: %s", exc)
    _remember_body(entry["etag"], entry["body"])


def make_entry(
    *,
    body: bytes,
    content_type: str,
    last_modified: datetime | None,
    public: bool,
    extra_headers: dict[str, str] | None = None,
) -> dict:
    return {
        "body": body,
        "content_type": content_type,
        "etag": '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        "last_modified": int(last_modified.timestamp()) if last_modified else None,
        "public": public,
        "headers": extra_headers or {},
    }


def cached_or_render(
    slug: str, variant: str, render: Callable[[], dict], *, generation: int | None
) -> dict:
    """`generation`: `page_generation(slug)` as read before the page was loaded."""
    entry = cache_get(slug, variant)
    if entry is None:
        entry = render()
        cache_set(slug, variant, entry, generation=generation)
    return entry


def entry_response(
    request: HttpRequest, entry: dict, load_body: Callable[[], bytes | None] | None = None
) -> HttpResponse | None:
    """The stored rendering as a response, or 304 when the client's copy is current.

    `entry` may come without its body (a revalidation then never needs it); `load_body`
    fetches it when it is needed, and None from it means the body is gone (answer None)."""
    response = HttpResponse(content_type=entry["content_type"])
    response["ETag"] = entry["etag"]
    if entry["last_modified"] is not None:
        response["Last-Modified"] = http_date(entry["last_modified"])
    # Revalidate every time (cheap: a 304 from the cache) so a change is seen at once.
    response["Cache-Control"] = ("public" if entry["public"] else "private") + ", no-cache"
    if not entry["public"]:
        response["Vary"] = "Cookie"
    for name, value in entry["headers"].items():
        response[name] = value
    conditional = get_conditional_response(
        request,
        etag=entry["etag"],
        last_modified=entry["last_modified"],
        response=response,
    )
    if conditional is not response:  # 304 (or 412): no body
        return conditional
    body = entry["body"] if "body" in entry else load_body() if load_body else None
    if body is None:
        return None
    if request.method != "HEAD":
        response.content = body
    else:
        response["Content-Length"] = str(len(body))
    return response


_path_re: re.Pattern | None = None


def _status_path_re() -> re.Pattern:
    global _path_re
    if _path_re is None:
        prefix = reverse("status:index")
        _path_re = re.compile(
            "^" + re.escape(prefix) + r"(?P<slug>[-a-zA-Z0-9_]+)/"
            r"(?:(?P<file>summary\.json|badge\.svg|feed\.atom)|(?P<history>history/))?$"
        )
    return _path_re


class StatusPageCacheMiddleware:
    """Serve public status pages straight from the cache, ahead of the session,
    authentication, CSRF and messages middleware (none of which a public page needs).

    Only entries rendered for a public page are served here; internal pages and cache
    misses fall through to the views, which check permissions and fill the cache."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            match = _status_path_re().match(request.path_info)
            if match is not None:
                variant = self._variant(request, match)
                if variant is not None:
                    meta = cache_get(match["slug"], variant, with_body=False)
                    if meta is not None and meta["public"]:
                        response = entry_response(request, meta, lambda: _body_for(meta["etag"]))
                        if response is not None:
                            return response
        return self.get_response(request)

    @staticmethod
    def _variant(request: HttpRequest, match: re.Match) -> str | None:
        if match["file"]:
            return match["file"]
        if match["history"]:
            # Only `page` counts (as in the view): other parameters are no way around it.
            page = request.GET.get("page", "1")
            if not page.isdigit():
                return None
            if not 1 <= int(page) <= HISTORY_PAGES_CACHED:
                return None
            return f"history:{int(page)}"
        # Query strings are ignored (?utm_source=...): they must not be a way around the cache.
        return "page"
