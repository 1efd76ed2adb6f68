"""Maintenance started by a real Celery worker process through the real broker, its notice
sent by the same worker to the real SMTP server, once, however many beats arrive."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import ComponentStatus, ScheduledMaintenance, StatusDelivery, StatusSubscriber
from incidents.statuspages.maintenance import maintenance_schedule
from incidents.statuspages.tasks import status_tick
from tests.statuspages.conftest import make_component, make_status_page


def wait_until(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_starts_a_due_window_once_and_mails_subscribers_once(
    celery_worker_process, smtp_inbox
):
    page = make_status_page("acme", title="Acme status")
    api = make_component(page, "API")
    StatusSubscriber.objects.create(
        page=page, email="ann@example.test", confirmed_at=timezone.now()
    )
    now = timezone.now()
    maintenance = maintenance_schedule(
        page=page,
        title="Database upgrade",
        message="Writes pause briefly.",
        components=[api],
        starts_at=now + timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        actor=None,
        notice_minutes=0,
    )
    # Its start time has come (moved rather than waited for).
    ScheduledMaintenance.objects.filter(pk=maintenance.pk).update(
        starts_at=now - timedelta(seconds=1)
    )

    # Three beats at once, as two beat processes or a re-delivered message would send.
    for _ in range(3):
        status_tick.apply_async(queue=celery_worker_process.queue)
    log = lambda: celery_worker_process.log_path.read_text()[-4000:]  # noqa: E731
    assert wait_until(lambda: StatusDelivery.objects.filter(state="sent").exists()), log()
    time.sleep(3)  # give any duplicate the chance to land

    maintenance.refresh_from_db()
    assert maintenance.state == ScheduledMaintenance.State.IN_PROGRESS
    api.refresh_from_db()
    assert api.status == ComponentStatus.UNDER_MAINTENANCE
    received = smtp_inbox.messages
    assert [m["Subject"] for m in received] == [
        "[Acme status] Maintenance in progress: Database upgrade"
    ], log()
    assert received[0]["To"] == "ann@example.test"
    assert StatusDelivery.objects.count() == 1
