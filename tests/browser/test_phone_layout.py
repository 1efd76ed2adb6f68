"""On a phone (390 px wide) the working pages fit the screen: nothing pushes the page
sideways, the top bar wraps instead of cutting off "Sign out"."""

from __future__ import annotations

import pytest

from incidents.alerting.parsers import TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create
from tests.factories import make_incident, make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_working_pages_fit_a_phone(page_as, screenshot):
    ivy = make_user("ivy", first_name="Ivy", last_name="Commander")  # as long as the demo's
    service = make_service("Checkout")
    incident = make_incident(
        declared_by=ivy,
        title="Card payments failing for some customers in Europe and the US",
        services_=[service],
    )
    integration, _ = integration_create(service=service, kind="pagerduty", name="Prometheus")
    alerts_ingest(
        integration=integration,
        events=[
            AlertEvent(action=TRIGGER, dedup_key="k", title="Checkout 5xx", severity="warning")
        ],
    )
    page = page_as(ivy)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ["/", "/alerts/", f"/incidents/{incident.pk}/", f"/services/{service.slug}/"]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
        assert page.get_by_role("button", name="Sign out").is_visible()
    screenshot(page, "phone-service")
    assert not page.js_errors and not page.server_errors
