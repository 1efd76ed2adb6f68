"""The intake parsers: random and malformed bodies only ever raise InvalidEvent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidents.alerting import parsers
from incidents.alerting.parsers import InvalidEvent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "groupKey",
        "status",
        "alerts",
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "title",
        "severity",
        "labels",
        "fingerprint",
        "summary",
        "source",
        "annotations",
    ]
)
shaped = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["firing", "resolved", "trigger", "resolve", "acknowledge", "critical"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)


def _parse_all(body: bytes):
    for parse in (
        parsers.parse_alertmanager,
        parsers.parse_pagerduty,
        parsers.parse_generic,
        lambda b: parsers.parse_generic(b, {"title": "a.b", "status": "x.y"}),
    ):
        try:
            parse(body)
        except InvalidEvent as error:
            assert error.errors and all(isinstance(e, str) for e in error.errors)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_cleanly(body):
    _parse_all(body)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_is_rejected_or_accepted_never_crashes(value):
    _parse_all(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(keys, shaped, max_size=8))
def test_nearly_right_payloads_never_crash(value):
    _parse_all(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "status": st.sampled_from(["firing", "resolved"]),
                "labels": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8)),
                "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=20)),
                "fingerprint": st.text(alphabet="0123456789abcdef", min_size=1, max_size=16),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_every_valid_alertmanager_alert_becomes_one_event(alerts):
    body = json.dumps({"version": "4", "groupKey": "{}:{}", "status": "firing", "alerts": alerts})
    try:
        events = parsers.parse_alertmanager(body.encode())
    except InvalidEvent as error:  # only strings the database cannot store are refused
        assert "NUL" in error.message or "UTF-8" in error.message
        return
    assert [e.dedup_key for e in events] == [a["fingerprint"] for a in alerts]
    assert all(e.action in ("trigger", "resolve") for e in events)
    assert all(len(e.title) <= parsers.MAX_SUMMARY for e in events)


def test_alertmanager_ignores_unknown_fields_and_maps_severity():
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "receiver": "firebreak",
        "somethingNew": [1, 2],
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "severity": "critical"},
                "annotations": {"summary": "p99 over 2s"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "abc123",
                "extra": True,
            }
        ],
    }
    [event] = parsers.parse_alertmanager(json.dumps(body).encode())
    assert (event.action, event.dedup_key, event.title, event.severity) == (
        "trigger",
        "abc123",
        "p99 over 2s",
        "critical",
    )
    assert event.group_key == '{}:{alertname="HighLatency"}'


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"alerts": []}',
        b'{"alerts": [{"status": "firing", "labels": "x"}]}',
        b'{"alerts": [{"status": "maybe", "fingerprint": "a"}]}',
        b'{"alerts": [{"status": "firing", "fingerprint": "a", "labels": {"a": "\\u0000"}}]}',
        b'{"alerts": [{"status": "firing", "fingerprint": "a", "labels": {"a": NaN}}]}',
        b'{"alerts": [{"status": "firing", "fingerprint": "\\ud800"}]}',
    ],
)
def test_alertmanager_refuses_malformed_bodies(body):
    with pytest.raises(InvalidEvent):
        parsers.parse_alertmanager(body)


def test_pagerduty_generates_a_dedup_key_and_never_keeps_the_routing_key():
    body = {
        "routing_key": "secret" * 5,
        "event_action": "trigger",
        "payload": {"summary": "Disk full", "source": "db1", "severity": "error"},
    }
    event, routing_key = parsers.parse_pagerduty(json.dumps(body).encode())
    assert routing_key == "secret" * 5
    assert event.dedup_key_generated and len(event.dedup_key) == 32
    assert "routing_key" not in event.payload
    assert "secret" not in json.dumps(event.payload)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"event_action": "explode"}, "event_action"),
        ({"event_action": "resolve"}, "dedup_key is required"),
        ({"event_action": "trigger"}, "payload is required"),
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "x" * 1025, "source": "s", "severity": "info"},
            },
            "summary is longer",
        ),
        (
            {
                "event_action": "trigger",
                "dedup_key": "k" * 256,
                "payload": {"summary": "x", "source": "s", "severity": "info"},
            },
            "dedup_key is longer",
        ),
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "x", "source": "s", "severity": "bad"},
            },
            "payload.severity",
        ),
    ],
)
def test_pagerduty_limits(body, error):
    with pytest.raises(InvalidEvent) as raised:
        parsers.parse_pagerduty(json.dumps(body).encode())
    assert any(error in e for e in raised.value.errors), raised.value.errors


def test_generic_uses_the_field_mapping():
    body = {"alert": {"name": "Queue backed up", "id": "q1", "level": "critical", "state": "ok"}}
    mapping = {
        "title": "alert.name",
        "dedup_key": "alert.id",
        "severity": "alert.level",
        "status": "alert.state",
    }
    [event] = parsers.parse_generic(json.dumps(body).encode(), mapping)
    assert (event.title, event.dedup_key, event.severity, event.action) == (
        "Queue backed up",
        "q1",
        "critical",
        "resolve",
    )


def test_bodies_over_512_kb_are_refused():
    with pytest.raises(InvalidEvent, match="larger than 512 KB"):
        parsers.parse_generic(b'{"title": "' + b"x" * (512 * 1024) + b'"}')


def test_a_body_nested_too_deeply_says_so():
    body = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(parsers.InvalidEvent, match="nested too deeply"):
        parsers.parse_pagerduty(body)
