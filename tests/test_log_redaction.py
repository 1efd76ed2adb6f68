"""Secret URLs (integration tokens, feed tokens, acknowledgement and subscription links)
never reach the log, even when Django logs the path of a refused request."""

from __future__ import annotations

import io
import logging

import pytest

from config.log_redaction import RedactSecretPaths, redact
from incidents.alerting import ratelimit
from tests.incidents.test_alert_intake import (
    am_alert,
    am_body,
    make_integration,
    post,
    service,  # noqa: F401  (fixture)
    url,
)


@pytest.mark.parametrize(
    "path",
    [
        "/integrations/{s}/alertmanager",
        "/integrations/{s}/heartbeat",
        "/oncall/feeds/schedule/{s}.ics",
        "/oncall/feeds/user/{s}.ics",
        "/oncall/ack/{s}/",
        "/status/subscriptions/12/confirm/{s}/",
        "/status/subscriptions/12/unsubscribe/{s}/",
    ],
)
def test_every_secret_path_is_redacted(path):
    secret = "Zk3-9_qPsecretTOKENvalue"
    line = f'"POST {path.format(s=secret)} HTTP/1.1" 503 73'
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_ordinary_paths_are_left_alone():
    for line in ["GET /incidents/42/ HTTP/1.1", "POST /integrations/pagerduty/enqueue"]:
        assert redact(line) == line


@pytest.fixture
def console_log():
    """What the configured console handler writes (the one production uses)."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretPaths) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    level = handler.level
    handler.setLevel(logging.DEBUG)
    yield stream
    handler.setStream(previous)
    handler.setLevel(level)


@pytest.mark.django_db
def test_a_rate_limited_alertmanager_call_logs_no_token(settings, service, console_log):  # noqa: F811
    settings.ALERT_RATE_LIMIT_PER_MINUTE = 1
    ratelimit._script.cache_clear()
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("first")))
    response = post(url("alertmanager", token), am_body(am_alert("over")))
    assert response.status_code == 503
    written = console_log.getvalue()
    assert "Service Unavailable" in written  # Django did log the refusal...
    assert token not in written  # ...without the credential in it
    assert "/integrations/[redacted]/alertmanager" in written
