"""Paging under faults, with real processes: nothing lost, nothing sent twice, on time.

Every test starts its own redis-server on a free port of 127.0.0.1 (never the machine's
Redis), real `celery -A config worker` and `celery -A config beat` subprocesses on it (tick
every second, a fresh FIREBREAK_VAR_DIR), and a signed-webhook receiver that counts
deliveries per X-Firebreak-Delivery id. The subprocesses use the test database
(FIREBREAK_DB_NAME; on SQLite it is a file).

Time is compressed in two ways, both through what the engine itself reads:
- escalations are started with a policy snapshot whose step delays are fractions of a
  minute (the engine reads `snapshot["steps"][i]["delay_minutes"]`), so step 2 falls due
  seconds after step 1;
- a personal rule "again after 1 minute" is made due sooner by moving its row's `due_at`
  (the database says what is due), and a claim left by a killed worker is aged past
  SENDING_TIMEOUT by moving `claimed_at` back, instead of waiting two minutes.

Delivery guarantee as the engine documents it (oncall/services.notifications_release_stuck,
oncall/notifiers module docstring): a notification whose sender died mid-request is sent
again, with the same delivery id, once its claim is SENDING_TIMEOUT old. So a receiver sees
each delivery id once, except the one in flight when a worker was killed, which it may see
twice and drops by id. The tests assert exactly that and nothing looser.

The last two tests pin two bugs these scenarios found and that are now fixed: two concurrent
claims both winning on PostgreSQL (a claim condition behind a join), and declaring an
incident while Redis is down raising after the incident was saved.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from oncall import services
from oncall.models import (
    ContactMethod,
    Escalation,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationRule,
    Page,
    StepTarget,
)
from tests.factories import make_incident, make_service, make_user
from tests.oncall.faults import (
    CeleryProcess,
    RedisServer,
    WebhookReceiver,
    celery_env,
    use_broker,
    wait_until,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.timeout(90),
]

TICK_SECONDS = 1
# How late a step or a tick-driven notification may arrive after it falls due: one tick,
# the tick's own work and the delivery task's hop through Redis, on a busy 2-core machine.
ON_TIME_SLACK = TICK_SECONDS + 3.0


class Rig:
    """A private Redis, the receiver, and the workers and beats of one test."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.redis = RedisServer(tmp_path / "redis")
        self.receiver = WebhookReceiver()
        self.procs: list[CeleryProcess] = []
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self.redis.start()
        self.receiver.start()
        self.env = celery_env(
            broker_url=self.redis.url(0),
            settings_module="config.settings_test",
            var_dir=self.dir / "var",
            db_name=str(connection.settings_dict["NAME"]),
            extra={
                "ONCALL_TICK_SECONDS": str(TICK_SECONDS),
                "NOTIFIER_TIMEOUT_SECONDS": "10",
                "LOG_LEVEL": "INFO",
                # Only the paging heartbeat matters here; the other sweeps stay quiet.
                "UPDATE_REMINDER_SWEEP_SECONDS": "3600",
                "HANDOFF_SWEEP_SECONDS": "3600",
                "POSTMORTEM_SWEEP_SECONDS": "3600",
                "ACTION_ITEM_SWEEP_SECONDS": "3600",
            },
        )

    def worker(self, name: str, concurrency: int = 2) -> CeleryProcess:
        proc = CeleryProcess.worker(
            env=self.env, log_dir=self.dir, name=name, concurrency=concurrency
        ).start()
        self.procs.append(proc)
        return proc

    def beat(self, name: str) -> CeleryProcess:
        proc = CeleryProcess.beat(env=self.env, log_dir=self.dir, name=name).start()
        self.procs.append(proc)
        return proc

    def ready(self, *procs: CeleryProcess) -> None:
        for proc in procs:
            proc.wait_ready(40)

    def logs(self) -> str:
        return "\n".join(p.log_tail(2500) for p in self.procs) + "\n" + self.redis.log_tail(800)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=5)
        self.receiver.close()
        self.redis.stop()


@pytest.fixture
def rig(transactional_db, tmp_path):
    """Torn down before the test database is flushed: no process writes to it afterwards."""
    rig = Rig(tmp_path)
    try:
        rig.start()
        with use_broker(rig.redis.url(0)):
            yield rig
    finally:
        rig.close()


# --- Building paging ----------------------------------------------------------------------


def person(rig: Rig, name: str, *, again_after_1_min: bool = False):
    """Someone reachable only by a signed webhook: at once, and optionally again after a
    minute (no email rule: the user has no address)."""
    user = make_user(name, email="")
    path = f"/hook/{name}"
    secret = secrets.token_hex(16)
    rig.receiver.secrets[path] = secret
    method = ContactMethod.objects.create(
        user=user, kind="webhook", address=rig.receiver.url(path), secret=secret, label=name
    )
    NotificationRule.objects.create(user=user, contact_method=method, delay_minutes=0)
    if again_after_1_min:
        NotificationRule.objects.create(user=user, contact_method=method, delay_minutes=1)
    return user


def escalate(key: str, *steps: tuple[float, list]) -> Escalation:
    """Start paging through the real service: steps are (seconds until the next step,
    [people]). The first step runs from the on-commit message, the rest from the tick."""
    snapshot = {
        "policy_id": None,
        "name": key,
        "repeat_count": 0,
        "steps": [
            {
                "delay_minutes": seconds / 60,
                "targets": [{"kind": "user", "id": u.pk, "name": u.display_name} for u in users],
            }
            for seconds, users in steps
        ],
    }
    with transaction.atomic():
        return services.escalation_start(
            subject_key=key, title=f"Fault test {key}", snapshot=snapshot
        )


def delivery_id(notification: Notification) -> str:
    return f"firebreak-notification-{notification.pk}"


def notification_of(user, delay_minutes: int = 0) -> Notification:
    return Notification.objects.get(page__user=user, delay_minutes=delay_minutes)


def wait_for_notification(user, delay_minutes: int = 0, timeout: float = 20) -> Notification:
    found = wait_until(
        lambda: Notification.objects.filter(page__user=user, delay_minutes=delay_minutes).first(),
        timeout,
        0.1,
    )
    assert found, f"{user} was never paged"
    return found


def make_due(user, delay_minutes: int, *, in_seconds: float = 0.0) -> Notification:
    """'Again after N minutes' falls due now (or in a few seconds) instead of in N minutes."""
    notification = notification_of(user, delay_minutes)
    Notification.objects.filter(pk=notification.pk, state="pending").update(
        due_at=timezone.now() + timedelta(seconds=in_seconds)
    )
    notification.refresh_from_db()
    return notification


def step_due_at(escalation: Escalation, step_index: int) -> float:
    """When a step fell due (unix time): the previous step's page time plus its delay."""
    previous = Page.objects.filter(escalation=escalation, step_index=step_index - 1).first()
    delay = escalation.snapshot["steps"][step_index - 1]["delay_minutes"]
    return (previous.created_at + timedelta(minutes=delay)).timestamp()


def assert_delivered_once_each(rig: Rig, *, may_repeat: frozenset[str] = frozenset()) -> dict:
    """Every notification is sent, and reached the receiver signed, exactly once by id
    (`may_repeat`: ids in flight when a worker was killed, at most twice). Returns the
    receiver's count per delivery id.

    Any other duplicate fails the test.
    """
    notifications = {delivery_id(n): n for n in Notification.objects.order_by("pk")}
    states = {did: n.state for did, n in notifications.items()}
    assert all(state == "sent" for state in states.values()), (states, rig.logs())
    counts = rig.receiver.counts()
    expected = set(states)
    assert set(counts) == expected, (sorted(set(counts) ^ expected), rig.logs())
    for did, count in counts.items():
        if did in may_repeat:
            assert count <= 2, (did, count, rig.logs())
            continue
        if count == 1:
            continue
        raise AssertionError((did, count, notifications[did].attempts, rig.logs()))
    unsigned = [d.delivery_id for d in rig.receiver.snapshot() if not d.signature_ok]
    assert unsigned == [], unsigned
    return dict(counts)


def finish(rig: Rig) -> None:
    """Nothing left to check once every scenario's own assertions passed."""


# --- a. A worker killed mid-escalation -----------------------------------------------------


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_next_step_fires_on_time(rig):
    w1, beat = rig.worker("worker-1"), rig.beat("beat")
    ana = person(rig, "ana", again_after_1_min=True)
    ben, cat, dan = person(rig, "ben"), person(rig, "cat"), person(rig, "dan")
    rig.ready(w1, beat)

    # Ana's receiver stalls: the worker sending her page is mid-request when it dies.
    rig.receiver.hang(lambda d: d.path == "/hook/ana")
    stalled = escalate("fault:a1", (10, [ana]), (600, [ben]))
    calm = escalate("fault:a2", (10, [cat]), (600, [dan]))
    assert rig.receiver.hanging.wait(15), rig.logs()
    cat_first = wait_for_notification(cat)
    assert rig.receiver.wait_for_ids([delivery_id(cat_first)], 10), rig.logs()
    # Only Ana's page is in flight at the kill: Cat's is recorded as sent.
    assert wait_until(
        lambda: Notification.objects.filter(pk=cat_first.pk, state="sent").exists(), 10
    ), rig.logs()

    w1.kill(signal.SIGKILL)  # the worker and its pool children, mid-task
    killed_at = time.time()
    rig.receiver.release()
    in_flight = notification_of(ana)
    assert in_flight.state == "sending"  # the dead worker's claim
    # Ana's "again after 1 minute" falls due while no worker runs at all.
    again = make_due(ana, 1)

    time.sleep(1.0)
    w2 = rig.worker("worker-2")
    rig.ready(w2)

    # Step 2 of both escalations is run by the tick of the new worker, on time.
    late = {}
    for escalation, user in ((stalled, ben), (calm, dan)):
        notification = wait_for_notification(user, timeout=25)
        assert rig.receiver.wait_for_ids([delivery_id(notification)], 15), rig.logs()
        arrived = rig.receiver.first(delivery_id(notification)).received_at
        late[user.username] = arrived - step_due_at(escalation, 1)
        assert late[user.username] <= ON_TIME_SLACK, (late, rig.logs())
    assert rig.receiver.wait_for_ids([delivery_id(again)], 15), rig.logs()

    # The dead worker's claim holds until it is SENDING_TIMEOUT old: nobody else sends it
    # meanwhile, and the receiver has it once (it arrived before the worker died).
    in_flight.refresh_from_db()
    assert in_flight.state == "sending"
    assert rig.receiver.counts()[delivery_id(in_flight)] == 1
    Notification.objects.filter(pk=in_flight.pk).update(
        claimed_at=timezone.now() - services.SENDING_TIMEOUT - timedelta(seconds=1)
    )
    released_at = time.time()
    assert wait_until(lambda: rig.receiver.counts()[delivery_id(in_flight)] == 2, 15), rig.logs()
    resent_after = rig.receiver.snapshot()[-1].received_at - released_at
    assert wait_until(
        lambda: Notification.objects.filter(pk=in_flight.pk, state="sent").exists(), 10
    )
    time.sleep(2)  # room for any duplicate to show up

    counts = assert_delivered_once_each(rig, may_repeat=frozenset({delivery_id(in_flight)}))
    in_flight.refresh_from_db()
    assert in_flight.attempts == 2
    assert len(counts) == 5
    pages = sorted(Page.objects.values_list("user__username", "step_index"))
    assert pages == [("ana", 0), ("ben", 1), ("cat", 0), ("dan", 1)]
    print(
        f"\n[fault a] killed at +0; step-2 lateness {late} s; 5 notifications, "
        f"deliveries {sorted(counts.values())}; stuck claim re-sent {resent_after:.1f} s "
        f"after it aged past SENDING_TIMEOUT (ana's due repeat delivered "
        f"{rig.receiver.first(delivery_id(again)).received_at - killed_at:.1f} s after kill)"
    )
    finish(rig)


# --- b. Redis stopped and started again ----------------------------------------------------


def test_redis_stopped_and_started_again_delivers_everything_due_once(rig):
    worker, beat = rig.worker("worker"), rig.beat("beat")
    firsts = [person(rig, f"first{n}", again_after_1_min=True) for n in range(3)]
    seconds = [person(rig, f"second{n}") for n in range(3)]
    late_comer = person(rig, "latecomer")
    rig.ready(worker, beat)

    escalations = [
        escalate(f"fault:b{n}", (6, [first]), (600, [second]))
        for n, (first, second) in enumerate(zip(firsts, seconds, strict=True))
    ]
    step1 = [wait_for_notification(user) for user in firsts]
    assert rig.receiver.wait_for_ids([delivery_id(n) for n in step1], 15), rig.logs()
    # Each first responder's "again after 1 minute" falls due during the outage.
    agains = [make_due(user, 1, in_seconds=2) for user in firsts]

    rig.redis.stop()
    down_at = time.time()
    # Paging started while the broker is down: the on-commit message cannot be sent.
    raised = None
    try:
        started_while_down = escalate("fault:b-down", (600, [late_comer]))
    except Exception as exc:  # noqa: BLE001 - see test_starting_paging_while_redis_is_down...
        raised = exc
        started_while_down = Escalation.objects.get(subject_key="fault:b-down")
    time.sleep(max(0.0, 8 - (time.time() - down_at)))  # step 2 and the repeats fall due now
    assert not rig.receiver.counts().keys() - {delivery_id(n) for n in step1}
    rig.redis.start()
    up_at = time.time()

    due_after_outage = [(e, u) for e, u in zip(escalations, seconds, strict=True)]
    wanted = []
    for _, user in due_after_outage:
        wanted.append(delivery_id(wait_for_notification(user, timeout=30)))
    wanted.append(delivery_id(wait_for_notification(late_comer, timeout=30)))
    wanted += [delivery_id(n) for n in agains]
    assert rig.receiver.wait_for_ids(wanted, 30), (rig.receiver.counts(), rig.logs())
    time.sleep(2)  # room for any duplicate to show up

    counts = assert_delivered_once_each(rig)
    assert len(counts) == 10
    assert Page.objects.count() == 7
    after_up = {did: rig.receiver.first(did).received_at - up_at for did in wanted}
    worst = max(after_up.values())
    started_while_down.refresh_from_db()
    print(
        f"\n[fault b] Redis down {up_at - down_at:.1f} s; after it came back: deliveries "
        f"{min(after_up.values()):.1f}-{worst:.1f} s later; escalation_start while down "
        f"raised {type(raised).__name__ if raised else 'nothing'}; deliveries "
        f"{sorted(counts.values())}; worker reconnect lines: "
        f"{worker.count('Trying again in')}, beat send errors: {beat.count('Message Error|ERROR')}"
    )
    # Due during the outage, delivered once Redis is back: after the worker's and beat's
    # next reconnect attempt (kombu backs off 2, 4, 6 ... s: at most 6 s late after an 8 s
    # outage), then one tick.
    assert worst <= 6 + ON_TIME_SLACK, (after_up, rig.logs())
    finish(rig)


# --- c. Two beats at once ------------------------------------------------------------------


def test_two_beats_at_once_page_each_person_once_and_deliver_each_notification_once(rig):
    worker_1, worker_2 = rig.worker("worker-1"), rig.worker("worker-2")
    beat_1, beat_2 = rig.beat("beat-1"), rig.beat("beat-2")
    firsts = [person(rig, f"first{n}", again_after_1_min=True) for n in range(4)]
    seconds = [person(rig, f"second{n}") for n in range(4)]
    rig.ready(worker_1, worker_2, beat_1, beat_2)
    started = time.time()

    escalations = [
        escalate(f"fault:c{n}", (4, [first]), (600, [second]))
        for n, (first, second) in enumerate(zip(firsts, seconds, strict=True))
    ]
    step1 = [wait_for_notification(user) for user in firsts]
    assert rig.receiver.wait_for_ids([delivery_id(n) for n in step1], 15), rig.logs()
    # The repeats fall due together, so both beats' ticks race to hand them over.
    agains = [make_due(user, 1, in_seconds=1.5) for user in firsts]
    step2 = [wait_for_notification(user, timeout=20) for user in seconds]
    wanted = [delivery_id(n) for n in (*step2, *agains)]
    assert rig.receiver.wait_for_ids(wanted, 20), (rig.receiver.counts(), rig.logs())
    time.sleep(3)  # a few more racing ticks

    # Both beats really ticked all along: each one's own count, from its schedule file.
    both_ran = time.time() - started
    for beat in (beat_1, beat_2):
        beat.stop()
    ticks = [beat.run_counts()["oncall-tick"] for beat in (beat_1, beat_2)]
    received = sum(w.count(r"oncall_tick\[[^\]]*\] received") for w in (worker_1, worker_2))
    assert all(t >= both_ran / TICK_SECONDS - 3 for t in ticks), (ticks, both_ran, rig.logs())
    counts = assert_delivered_once_each(rig)
    assert len(counts) == 12
    pages = Page.objects.values_list("escalation_id", "user_id", "step_index", "cycle")
    assert len(pages) == 8 == len(set(pages))
    # Each notification claimed exactly once, however many ticks handed it over.
    attempts = dict(Notification.objects.values_list("pk", "attempts"))
    assert set(attempts.values()) == {1}, attempts
    late = [
        rig.receiver.first(delivery_id(n)).received_at - step_due_at(e, 1)
        for e, n in zip(escalations, step2, strict=True)
    ]
    assert max(late) <= ON_TIME_SLACK, (late, rig.logs())
    print(
        f"\n[fault c] {both_ran:.0f} s of paging: ticks sent by beat-1 {ticks[0]}, by beat-2 "
        f"{ticks[1]}, received by the workers {received}; "
        f"8 pages, 12 notifications, deliveries {sorted(counts.values())}; step-2 lateness "
        f"{min(late):.2f}-{max(late):.2f} s"
    )
    finish(rig)


# --- Engine bugs found by these tests ------------------------------------------------------


def _policy_paging(user, name="Fault policy"):
    policy = EscalationPolicy.objects.create(name=name, repeat_count=0)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=15)
    StepTarget.objects.create(step=step, kind="user", user=user)
    service = make_service("Fault service")
    service.escalation_policy = policy
    service.save()
    return service


def test_declaring_an_incident_while_redis_is_down_succeeds_and_the_tick_pages_later(rig):
    declarer = make_user("ivy", email="")
    service = _policy_paging(person(rig, "raj"))
    rig.redis.stop()
    try:
        incident = make_incident(declared_by=declarer, services_=[service])
    finally:
        assert Escalation.objects.count() == 1  # committed either way
    assert incident.pk


def test_two_workers_claiming_one_notification_at_once_send_it_once(transactional_db):
    """Two delivery messages for one notification (two ticks handed it over, or a message
    redelivered) are run by two workers at the same moment: only one may claim it."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs writers one at a time (IMMEDIATE transactions)")
    raj = make_user("raj", email="")
    method = ContactMethod.objects.create(
        user=raj, kind="webhook", address="http://127.0.0.1:9/", secret="s" * 32
    )
    now = timezone.now()
    escalation = Escalation.objects.create(
        subject_key="fault:claim", title="Claim race", snapshot={"steps": []}, started_at=now
    )
    page = Page.objects.create(
        escalation=escalation, user=raj, step_index=0, cycle=0, created_at=now
    )
    notification = Notification.objects.create(page=page, contact_method=method, due_at=now)

    first_claimed, second_started, results = threading.Event(), threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = services.notification_claim(notification_id=notification.pk)
                first_claimed.set()
                # Hold the claim uncommitted until the second worker is blocked on the row.
                second_started.wait(10)
                wait_until(_someone_waits_for_a_row_lock, 5)
        finally:
            connection.close()

    def second():
        try:
            first_claimed.wait(10)
            second_started.set()
            results["second"] = services.notification_claim(notification_id=notification.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results["first"] is not None
    assert results["second"] is None, "both workers claimed the notification: it is sent twice"


def _someone_waits_for_a_row_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
