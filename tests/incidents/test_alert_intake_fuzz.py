"""Random bodies at every intake endpoint: a 2xx or a clear 400, never a 500, and a
rejected body writes nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.alerting.services import integration_create
from incidents.models import Alert, Incident
from tests.factories import make_service

pytestmark = pytest.mark.django_db

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
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["firing", "resolved", "trigger", "resolve", "acknowledge", "critical"])
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        leaves,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=6),
        max_leaves=25,
    ).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture
def tokens(db):
    service = make_service("Fuzzed")
    return {
        kind: integration_create(service=service, kind=kind)[1]
        for kind in ("alertmanager", "pagerduty", "generic")
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=st.sampled_from(["alertmanager", "pagerduty", "generic"]), body=bodies)
def test_random_bodies_never_crash_an_endpoint(tokens, kind, body):
    before = (Alert.objects.count(), Incident.objects.count())
    url = reverse(f"integrations:{kind}", kwargs={"token": tokens[kind]})
    response = Client().post(url, body, content_type="application/json")
    assert response.status_code in (200, 202, 400), (response.status_code, body)
    data = response.json()
    if response.status_code == 400:
        assert data["status"] == "invalid event" and data["errors"]
        assert (Alert.objects.count(), Incident.objects.count()) == before
