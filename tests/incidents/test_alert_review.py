"""Found in review: inputs that must be refused or ignored, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.alerting.parsers import TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create
from incidents.models import Alert

pytestmark = pytest.mark.django_db

LIST = reverse("alerts:list")


@pytest.fixture
def feed(make_service):
    integration, _ = integration_create(
        service=make_service("Checkout"), kind="generic", name="Prometheus"
    )
    return integration


def fire(integration, key, **labels):
    alerts_ingest(
        integration=integration,
        events=[AlertEvent(action=TRIGGER, dedup_key=key, title=f"Alert {key}", labels=labels)],
    )
    return Alert.objects.get(integration=integration, dedup_key=key)


@pytest.mark.parametrize(
    "term",
    ["isnull=x", "regex=(", "iregex=[", "contains=x", "has_keys=x", "in=x", "lt=x", "exact=x"],
)
def test_a_label_search_named_like_a_lookup_is_a_label_not_a_500(feed, viewer, term):
    """`label=value` search: a label called "isnull" or "regex" is still a label."""
    fire(feed, "disk", isnull="x", regex="(")
    client = Client()
    client.force_login(viewer)
    response = client.get(LIST, {"q": term})
    assert response.status_code == 200
    body = response.content.decode()
    key, _, value = term.partition("=")
    expected = {"isnull": "x", "regex": "("}.get(key) == value
    assert ("Alert disk" in body) is expected


def test_huge_ids_are_a_404_or_a_422_not_a_500(feed, responder):
    alert = fire(feed, "disk")
    client = Client()
    client.force_login(responder)
    huge = "9" * 30
    assert client.get(f"{LIST}{huge}/").status_code == 404
    assert client.get(f"{LIST}{huge}/declare/").status_code == 404
    response = client.post(
        reverse("alerts:bulk"), {"action": "acknowledge", "alert": [huge], "next": LIST}
    )
    assert response.status_code == 422
    response = client.post(
        reverse("alerts:bulk"),
        {"action": "attach", "alert": [alert.pk], "incident": huge, "next": LIST},
    )
    assert response.status_code == 422
    response = client.post(
        reverse("alerts:bulk"),
        {"action": "acknowledge", "alert": [huge], "next": f"{LIST}{huge}/"},
    )
    assert response.status_code in (404, 422)


_label_search = st.builds(
    lambda k, v: f"{k}={v}",
    st.one_of(
        st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
        st.sampled_from(["isnull", "regex", "iregex", "contains", "has_keys", "in"]),
    ),
    st.from_regex(r"[^\s\x00]{1,20}", fullmatch=True),
)
_anything = st.one_of(st.text(max_size=60), st.integers().map(str))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.fixed_dictionaries(
        {"q": st.one_of(_label_search, _anything)},
        optional={name: _anything for name in ("status", "severity", "since", "page")},
    )
)
def test_whatever_the_filters_say_the_alerts_page_answers(params, viewer_with_alert):
    """Filters and search from the address bar: a page of alerts, never a 500."""
    response = viewer_with_alert.get(LIST, params)
    assert response.status_code == 200


@pytest.fixture
def viewer_with_alert(feed, viewer):
    fire(feed, "disk", team="db", severity="x")
    client = Client()
    client.force_login(viewer)
    return client
