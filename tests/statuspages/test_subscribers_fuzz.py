"""Whatever arrives at the subscribe, confirm and unsubscribe endpoints: a clear 4xx or the
usual answer, never a 500, and nothing half-written."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.models import StatusSubscriber
from tests.statuspages.conftest import make_component, make_status_page

form_values = st.one_of(
    st.text(max_size=300),
    st.emails().map(str),
    st.integers().map(str),
    st.just("ann@example.test"),
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    email=form_values,
    components=st.lists(form_values, max_size=4),
    extra=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=3),
)
def test_the_subscribe_form_never_fails(email, components, extra, django_settings_per_example):
    page = django_settings_per_example
    client = Client(REMOTE_ADDR="203.0.113.9")
    data = {**extra, "email": email, "components": components}
    response = client.post(reverse("status:subscribe", kwargs={"slug": page.slug}), data)
    assert response.status_code in (200, 422, 429)
    if response.status_code == 422:
        assert b'class="field-error"' in response.content or b"form-error" in response.content
    for subscriber in StatusSubscriber.objects.all():
        assert subscriber.email == subscriber.email.strip().lower()
        assert subscriber.confirmation_sent_at is not None


@pytest.fixture
def django_settings_per_example(db, settings):
    settings.STATUS_SUBSCRIBE_PER_IP = 10_000
    settings.STATUS_SUBSCRIBE_PER_ADDRESS = 10_000
    page = make_status_page("acme")
    make_component(page, "API")
    return page


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"),
        min_size=1,
        max_size=100,
    ),
    pk=st.integers(min_value=0, max_value=2**62),
)
def test_forged_links_are_404s(token, pk, django_settings_per_example):
    client = Client()
    for name in ("status:subscription_confirm", "status:unsubscribe"):
        url = reverse(name, kwargs={"pk": pk, "token": token})
        assert client.get(url).status_code == 404
        assert client.post(url).status_code == 404
