"""Two commanders acting at the same moment: neither change is lost.

Runs against the configured database; on PostgreSQL the row lock is real
(SELECT ... FOR UPDATE), on SQLite writers are serialised by IMMEDIATE transactions.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from incidents import services
from incidents.models import Incident, TimelineKind
from tests.factories import make_incident, make_user, severity


def run_together(*actions):
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []
    results: list = [None] * len(actions)

    def runner(index, action):
        try:
            barrier.wait()
            results[index] = action()
        except BaseException as exc:  # collected and re-checked by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_commanders_changing_different_things_at_once_both_land():
    ivy = make_user("ivy")
    raj = make_user("raj")
    incident = make_incident(declared_by=ivy)
    for _ in range(5):
        _, errors = run_together(
            lambda: services.incident_change_severity(
                incident=incident,
                actor=ivy,
                severity=severity("SEV1")
                if Incident.objects.get(pk=incident.pk).severity.name != "SEV1"
                else severity("SEV2"),
            ),
            lambda: services.task_add(incident=incident, actor=raj, title="Check the proxy"),
            lambda: services.note_add(incident=incident, author=raj, body="Seen at the edge"),
        )
        assert not errors, errors
    incident.refresh_from_db()
    assert incident.tasks.count() == 5
    assert incident.timeline.filter(kind=TimelineKind.NOTE).count() == 5
    assert incident.timeline.filter(kind=TimelineKind.SEVERITY).count() == 5
    # Every change counted once in the revision: none overwrote another.
    assert incident.revision == incident.timeline.count()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_commanders_resolving_at_once_resolve_once_and_the_other_is_told_why():
    ivy = make_user("ivy")
    raj = make_user("raj")
    incident = make_incident(declared_by=ivy)
    results, errors = run_together(
        lambda: services.incident_transition(incident=incident, actor=ivy, to_status="resolved"),
        lambda: services.incident_transition(incident=incident, actor=raj, to_status="resolved"),
    )
    assert len(errors) == 1
    assert isinstance(errors[0], services.IncidentRefused)
    assert "already resolved" in str(errors[0])
    assert incident.timeline.filter(kind=TimelineKind.STATUS).count() == 1
