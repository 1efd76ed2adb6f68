"""Headless Chromium, driven by Playwright's sync API, against pytest-django's live server.

Chromium comes from Debian (`/usr/bin/chromium`); never `playwright install` (no internet).
Without it the browser tests skip, unless FIREBREAK_REQUIRE_BROWSER=1 (CI), where they fail.

Why DJANGO_ALLOW_ASYNC_UNSAFE: Playwright's sync API runs an asyncio event loop in the test's
own thread (it switches greenlets into it for every call). Django's async-safety guard sees
that running loop and raises SynchronousOnlyOperation on every ORM call from the test thread,
e.g. a factory or an assertion on the database. Those calls are in fact synchronous and never
overlap with a browser call, so the guard is a false alarm here. We set the variable only
while Playwright is running (the `playwright` fixture is module-scoped and puts it back on
teardown), so tests outside tests/browser keep Django's guard.

Data: `live_server` makes every test transactional, and the flush between transactional tests
wipes what data migrations wrote (severities, groups and their permissions). Browser tests
therefore use `@pytest.mark.django_db(transaction=True, serialized_rollback=True)`, and the
`seeded` fixture checks that the migration rows are really there. The running event loop
also changes which DatabaseWrapper the test thread gets; the `playwright` fixture hands the
serialized snapshot over to it (see there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# How long to wait for what a person would wait for: an htmx swap, a poll (1 s in tests).
EXPECT_TIMEOUT_MS = 6_000


@pytest.fixture(scope="module")
def playwright(django_db_setup, django_db_blocker) -> Iterator:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("FIREBREAK_REQUIRE_BROWSER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from django.db import connections
    from playwright.sync_api import expect, sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see the module docstring
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    sync_wrappers = {alias: connections[alias] for alias in connections}
    manager = sync_playwright().start()
    # With an event loop running in this thread, Django's `connections` (an asgiref Local,
    # thread_critical) hands out *new* DatabaseWrappers kept in a context variable. The
    # snapshot that serialized_rollback restores after each flush lives on the old wrapper
    # only, so without this the migration rows silently vanish after the first test.
    for alias, wrapper in sync_wrappers.items():
        if hasattr(wrapper, "_test_serialized_contents"):
            connections[alias]._test_serialized_contents = wrapper._test_serialized_contents
    try:
        yield manager
    finally:
        # The loop-context wrappers are about to become unreachable: close their
        # connections now rather than leave them to the garbage collector (transactional
        # tests close them after each test already; this covers a failed setup).
        with django_db_blocker.unblock():
            connections.close_all()
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def seeded(db):
    """The rows the 0003 data migration writes, which every page relies on."""
    from django.contrib.auth.models import Group

    from incidents.models import Severity

    names = sorted(Severity.objects.values_list("name", flat=True))
    assert names == ["SEV1", "SEV2", "SEV3", "SEV4"], (
        f"severities from the data migration are missing ({names}): mark the test "
        "@pytest.mark.django_db(transaction=True, serialized_rollback=True)"
    )
    assert Group.objects.filter(name="Responders", permissions__isnull=False).exists()


@pytest.fixture
def new_context(browser, live_server, seeded) -> Iterator[Callable]:
    """Open a browser context, optionally already signed in as `user` (session cookie)."""
    from django.conf import settings
    from django.test import Client

    contexts = []

    def open_context(user=None, *, java_script_enabled: bool = True):
        context = browser.new_context(
            base_url=live_server.url,
            java_script_enabled=java_script_enabled,
            viewport={"width": 1280, "height": 900},
            locale="en-GB",
            timezone_id="UTC",
        )
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        if user is not None:
            client = Client()
            client.force_login(user)
            context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "url": live_server.url,
                    }
                ]
            )
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def page_as(new_context) -> Callable:
    """A page in a fresh context for `user`, which records failed requests and JS errors."""

    def open_page(user=None, *, java_script_enabled: bool = True):
        page = new_context(user, java_script_enabled=java_script_enabled).new_page()
        page.js_errors = []
        page.server_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.on(
            "response",
            lambda r: (
                page.server_errors.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 500
                else None
            ),
        )
        return page

    return open_page


@pytest.fixture(scope="session")
def screenshot() -> Callable:
    """Save a full-page screenshot to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
