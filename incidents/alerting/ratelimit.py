"""A rate limit per integration, shared by every web process (and a one-shot claim built
on the same store).

A fixed one-minute window counted in Redis: one round trip runs a small Lua script that
increments the window's counter and sets its expiry on the first hit, so the count and
its lifetime cannot come apart (a crash between INCR and EXPIRE would leave a counter
that never expires). With no REDIS_URL, Django's cache keeps the count (the embedded
setup runs one process). If the store is down the limit fails open: losing alerts
because the counter is unreachable would be worse than letting a burst through.

Intake (with Redis) takes its counts in leases: a process asks Redis for a few requests'
worth of the window at once and spends them locally for at most LEASE_SECONDS. A steady
sender thus costs a Redis round trip every few dozen requests instead of every one (that
round trip was a fifth of an intake request's time), while the limit stays shared: a
lease never grants past the limit, and units a process took but did not spend count as
spent (an integration that falls silent can be refused up to LEASE_MOST early per web
process, until its window turns over). A lease starts at one request and doubles while
it runs out before it ends, so a quiet integration still asks Redis every time.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "firebreak:alert-rate"

_INCREMENT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
# An intake request may be about to store an alert: the alerts page's live refresh must
# not trust a revision computed from now until shortly after (selectors.alerts_revision).
# Marked in the rate check's own round trip, with Redis's clock, so storing the alert
# needs no second one to drop the revision.
# The mark only moves forward: a lease marks up to its end, and a plain check made meanwhile
# must not pull that back.
_RAISE_DIRTY = """
local t = redis.call('TIME')
local mark = t[1] * 1000 + math.floor(t[2] / 1000) + {ahead}
local kept = tonumber(redis.call('GET', KEYS[#KEYS]) or '0') or 0
if mark > kept then redis.call('SET', KEYS[#KEYS], mark, 'EX', 60) end
"""
_MARK_DIRTY = _RAISE_DIRTY.format(ahead="0")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds until the window turns over
    # The alerts page was told, in this round trip, that alerts may be about to change.
    marked: bool = False


@lru_cache(maxsize=1)
def _script():
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.25
    )
    return client.register_script(_INCREMENT)


@lru_cache(maxsize=4)
def _marking_script(client):
    return client.register_script(_MARK_DIRTY + _INCREMENT)


def _dirty_key() -> str | None:
    from incidents.alerting.selectors import alerts_dirty_redis_key

    return alerts_dirty_redis_key()


def redis_client():
    """The process's pooled client for REDIS_URL (short timeouts: callers fail open)."""
    return _script().registered_client


def _count(key: str) -> tuple[int, bool]:
    """The window's count after this request, and whether the alerts page was marked."""
    if getattr(settings, "REDIS_URL", ""):
        dirty = _dirty_key()
        if dirty:
            client = _script().registered_client
            return int(_marking_script(client)(keys=[key, dirty], args=[WINDOW_SECONDS * 2])), True
        return int(_script()(keys=[key], args=[WINDOW_SECONDS * 2])), False
    cache.add(key, 0, WINDOW_SECONDS * 2)
    try:
        return cache.incr(key), False
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, WINDOW_SECONDS * 2)
        return 1, False


def integration_rate_check(*, integration_id: int, now: float | None = None) -> Verdict:
    """Count one request for this integration; refuse it once the minute's limit is spent.

    ALERT_RATE_LIMIT_PER_MINUTE 0 turns the limit off. Never raises.
    """
    limit = settings.ALERT_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return Verdict(True)
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    try:
        count, marked = _count(f"{KEY_PREFIX}:{integration_id}:{window}")
    except Exception:  # the store is down or misconfigured: fail open, say so in the log
        logger.warning("Alert rate limit unavailable; letting the request through", exc_info=True)
        return Verdict(True)
    if count <= limit:
        return Verdict(True, marked=marked)
    retry = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
    return Verdict(False, retry_after=retry, marked=marked)


# Takes a lease: ARGV[3] more units of the window's count (fewer, or none, when the last
# lease's unspent units are given back with it), marks the alerts page dirty until the
# lease ends (ARGV[4] ms from now), and reads the integrations' generation.
_LEASE_MARK_DIRTY = _RAISE_DIRTY.format(ahead="tonumber(ARGV[4])")
_INCREMENT_READING = (
    _LEASE_MARK_DIRTY
    + """local n = redis.call('INCRBY', KEYS[1], ARGV[3])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local g = redis.call('GET', KEYS[2])
if not g then
  g = ARGV[2]
  redis.call('SET', KEYS[2], g)
end
return {n, g}
"""
)
GENERATION_KEY = "firebreak:integrations-generation"


_INCREMENT_READING_UNMARKED = _INCREMENT_READING.replace(_LEASE_MARK_DIRTY, "", 1)

LEASE_SECONDS = 0.2  # also how long a token rotated by another process may still work
LEASE_MOST = 64
_clock = time.monotonic  # a lease's life (tests set their own clock)


@dataclass
class _Lease:
    window: int
    size: int  # units granted
    left: int
    until: float  # _clock()
    generation: str | None
    marked: bool


_LEASES: dict[int, _Lease] = {}  # by integration id
_LEASES_LOCK = threading.Lock()  # runserver serves requests on threads
_LEASES_EPOCH = [0]  # bumped when leases are forgotten: one taken across that is not kept


def leases_forget() -> None:
    """Drop this process's leases: the next request of each integration asks Redis (and
    reads the integrations' generation) again."""
    with _LEASES_LOCK:
        _LEASES.clear()
        _LEASES_EPOCH[0] += 1


def _lease_size(previous: _Lease | None, limit: int, at: float) -> int:
    """Double a lease that ran out while it still had time to run, else take what the
    last one spent; never more than a sixtieth of the limit (a second's worth), so small
    limits stay exact."""
    most = max(1, min(LEASE_MOST, limit // 60))
    if previous is None:
        return 1
    if previous.left == 0 and at < previous.until:
        return min(most, previous.size * 2)
    return max(1, min(most, previous.size - previous.left))


@lru_cache(maxsize=8)
def _reading_script(client, marking: bool):
    return client.register_script(_INCREMENT_READING if marking else _INCREMENT_READING_UNMARKED)


def integrations_cacheable() -> bool:
    """Whether intake may keep integration rows: only when every request's rate check
    spends a lease taken from Redis within LEASE_SECONDS, whose round trip also read the
    generation that tells whether they changed."""
    return bool(getattr(settings, "REDIS_URL", "")) and settings.ALERT_RATE_LIMIT_PER_MINUTE > 0


def integration_rate_check_reading(
    *, integration_id: int, now: float | None = None
) -> tuple[Verdict, str | None]:
    """integration_rate_check, spending this process's lease (see the module) or taking
    a new one, and the integrations' generation read when that lease was taken (None if
    Redis could not be asked: then nothing kept may be trusted)."""
    limit = settings.ALERT_RATE_LIMIT_PER_MINUTE
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    started = _clock()
    with _LEASES_LOCK:
        lease = _LEASES.get(integration_id)
        if lease and lease.left and lease.window == window and started < lease.until:
            lease.left -= 1
            return Verdict(True, marked=lease.marked), lease.generation
        size = _lease_size(lease, limit, started)
        # An ended lease's unspent units of this window go back with the next round trip,
        # so a sender under the limit is never refused for units it did not use.
        unspent = lease.left if lease and lease.window == window else 0
        if lease:
            lease.left = 0  # given back (or lost with the window): spent by no one
        epoch = _LEASES_EPOCH[0]
    dirty = _dirty_key()
    keys = [f"{KEY_PREFIX}:{integration_id}:{window}", GENERATION_KEY] + ([dirty] if dirty else [])
    try:
        count, generation = _reading_script(redis_client(), bool(dirty))(
            keys=keys,
            # a missing generation (Redis flushed) starts as a new random one
            args=[
                WINDOW_SECONDS * 2,
                secrets.token_hex(8),
                size - unspent,
                int(LEASE_SECONDS * 1000),
            ],
        )
    except Exception:
        logger.warning("Alert rate limit unavailable; letting the request through", exc_info=True)
        return Verdict(True), None
    generation = generation.decode() if isinstance(generation, bytes) else str(generation)
    marked = bool(dirty)
    granted = min(size, limit - (int(count) - size))  # what was left of the limit
    with _LEASES_LOCK:
        if _LEASES_EPOCH[0] != epoch:
            # Leases were forgotten meanwhile (an integration changed in this process):
            # this one may carry the generation from before; keep nothing of it.
            generation = None
        elif granted > 0:
            current = _LEASES.get(integration_id)
            if current and current.left and current.window == window and started < current.until:
                current.left += granted - 1  # another thread's lease: add to it
                current.size += granted
            else:
                if len(_LEASES) >= 256:
                    _LEASES.clear()
                _LEASES[integration_id] = _Lease(
                    window, granted, granted - 1, started + LEASE_SECONDS, generation, marked
                )
        elif lease is not None and _LEASES.get(integration_id) is lease:
            _LEASES.pop(integration_id)  # refused: the next request asks for one unit
    if granted > 0:
        return Verdict(True, marked=marked), generation
    retry = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
    return Verdict(False, retry_after=retry, marked=marked), generation


def integrations_generation() -> str | None:
    try:
        client = redis_client()
        client.set(GENERATION_KEY, secrets.token_hex(8), nx=True)
        value = client.get(GENERATION_KEY)
    except Exception:
        return None
    return None if value is None else value.decode()


def integrations_generation_bump() -> None:
    """Some integration changed: rows kept by any process are no longer current."""
    if not getattr(settings, "REDIS_URL", ""):
        return
    try:
        redis_client().set(GENERATION_KEY, secrets.token_hex(8))
    except Exception:  # kept rows still age out within TOKEN_ROW_SECONDS
        logger.error("Could not mark integrations changed; kept tokens age out", exc_info=True)


def integration_rate_count(*, integration_id: int, now: float | None = None) -> int:
    """Requests counted for this integration in the current window (refused ones too,
    and units leased by web processes not yet spent): what an administrator checks before
    raising the limit. 0 if the store is down."""
    now = time.time() if now is None else now
    key = f"{KEY_PREFIX}:{integration_id}:{int(now // WINDOW_SECONDS)}"
    try:
        if getattr(settings, "REDIS_URL", ""):
            value = _script().registered_client.get(key)
        else:
            value = cache.get(key)
    except Exception:
        return 0
    return int(value or 0)


_CLAIM_BURST = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then return {1, tonumber(ARGV[1])} end
return {0, redis.call('PTTL', KEYS[1])}
"""
_EXTEND_BURST = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@lru_cache(maxsize=4)
def _claim_burst_script(client):
    return client.register_script(_CLAIM_BURST)


@lru_cache(maxsize=4)
def _extend_burst_script(client):
    return client.register_script(_EXTEND_BURST)


@dataclass(frozen=True)
class Claim:
    first: bool  # this caller took the claim
    left: float  # seconds the claim (this one or the one held) lasts; 0 when unknown
    token: str = ""  # the taker's own, so only it can extend this claim
    store_down: bool = False


def claim_burst(*, key: str, seconds: float) -> Claim:
    """The first caller with this key in `seconds` takes the claim, across every web
    process (SET NX in Redis; cache.add without Redis). Also first when the store is down:
    the caller then does its work every time, as it would with no gate at all."""
    token = secrets.token_hex(8)
    try:
        if getattr(settings, "REDIS_URL", ""):
            script = _claim_burst_script(_script().registered_client)
            claimed, left_ms = script(keys=[key], args=[int(seconds * 1000), token])
            return Claim(bool(claimed), max(0, int(left_ms)) / 1000, token if claimed else "")
        added = cache.add(key, token, seconds)
        return Claim(added, 0.0, token if added else "")
    except Exception:
        logger.warning("Claim store unavailable; not gathering", exc_info=True)
        return Claim(True, 0.0, store_down=True)


def extend_burst(*, key: str, token: str, seconds: float) -> bool:
    """Keep the claim taken with `token` for `seconds` from now, if it is still held. Never
    recreates one that ended, nor extends another taker's (the next burst's): the next
    caller of claim_burst is first again. False when it had ended, or the store is down."""
    try:
        if getattr(settings, "REDIS_URL", ""):
            script = _extend_burst_script(_script().registered_client)
            return bool(script(keys=[key], args=[token, int(seconds * 1000)]))
        # One embedded process without Redis: get-then-touch is race enough.
        return cache.get(key) == token and bool(cache.touch(key, seconds))
    except Exception:
        logger.warning("Claim store unavailable; not extending the claim", exc_info=True)
        return False
