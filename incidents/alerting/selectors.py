"""Reads for the alerts pages, permission-filtered in SQL so lists never hint at hidden rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.db.models.signals import post_save
from django.http import Http404
from django.utils import timezone

from incidents.models import Alert, AlertStatus, TimelineEntry, TimelineKind
from incidents.permissions import (
    incident_can_declare,
    incident_can_respond,
    incident_can_view,
    incident_can_view_unrestricted,
    incidents_visible_to,
)

log = logging.getLogger(__name__)

# Time ranges offered on the alerts page, by last seen.
SINCE = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}


def alerts_visible_to(user) -> QuerySet[Alert]:
    """Alerts follow their incident's permission; unattached ones need view_incident."""
    visible = Q(incident__in=incidents_visible_to(user).values("pk"))
    if incident_can_view_unrestricted(user):
        visible |= Q(incident__isnull=True)
    return Alert.objects.filter(visible)


@dataclass(frozen=True)
class AlertFilters:
    status: str = ""  # "", "open", or an AlertStatus
    service: int | None = None
    severity: str = ""
    integration: int | None = None
    since: str = ""  # a key of SINCE
    unattached: bool = False
    query: str = ""


def _search(term: str) -> Q:
    """Title words, a dedup key, or `label=value`.

    `label=value` is an exact match on one label (a JSON key lookup on both PostgreSQL and
    SQLite); a dedup key by its beginning (keys are often long hashes: people paste the
    first few characters); free text matches the title or any label value.
    """
    term = term.strip()
    if "=" in term and " " not in term:
        key, _, value = term.partition("=")
        if key and value and key.replace("_", "").replace("-", "").isalnum():
            # The key as one JSON key, never parsed as a lookup: "isnull=x" or "regex=("
            # is a label called isnull or regex (a lookup there would be a 500).
            return Q(Exact(KeyTextTransform(key, "labels"), value))
    return Q(title__icontains=term) | Q(dedup_key__startswith=term) | Q(labels__icontains=term)


def alert_list_for_user(*, user, filters: AlertFilters | None = None) -> QuerySet[Alert]:
    filters = filters or AlertFilters()
    alerts = alerts_visible_to(user)
    if filters.status == "open":
        alerts = alerts.exclude(status=AlertStatus.RESOLVED)
    elif filters.status in AlertStatus.values:
        alerts = alerts.filter(status=filters.status)
    if filters.service:
        alerts = alerts.filter(service_id=filters.service)
    if filters.severity:
        alerts = alerts.filter(severity=filters.severity)
    if filters.integration:
        alerts = alerts.filter(integration_id=filters.integration)
    if filters.since in SINCE:
        alerts = alerts.filter(last_seen__gte=timezone.now() - SINCE[filters.since][1])
    if filters.unattached:
        alerts = alerts.filter(incident__isnull=True)
    if filters.query.strip():
        alerts = alerts.filter(_search(filters.query))
    return alerts.select_related("service", "integration", "incident__severity").order_by(
        "-last_seen", "-pk"
    )


def alert_get_for_view(user, pk: int) -> Alert:
    """The alert, or a 404 for anyone who may not see it (nothing leaks about existence)."""
    alert = (
        Alert.objects.select_related("service", "integration", "incident__severity")
        .filter(pk=pk)
        .first()
    )
    if alert is None or not alert_can_view(user, alert):
        raise Http404("No such alert.")
    return alert


def alert_can_view(user, alert: Alert) -> bool:
    if alert.incident_id is None:
        return incident_can_view_unrestricted(user)
    return incident_can_view(user, alert.incident)


def alert_can_act(user, alert: Alert) -> bool:
    """Acknowledge, resolve, attach: the right to change its incident, or to declare one."""
    if alert.incident_id is None:
        return incident_can_declare(user)
    return incident_can_respond(user, alert.incident)


def alert_history(*, alert: Alert) -> list[dict]:
    """What happened to this alert, oldest first: fired, acknowledged, resolved, and the
    entries its incident's timeline wrote about it."""
    events = [{"at": alert.first_seen, "what": "First seen", "who": None}]
    acknowledged_at = getattr(alert, "acknowledged_at", None)
    if acknowledged_at:
        events.append(
            {
                "at": acknowledged_at,
                "what": "Acknowledged",
                "who": getattr(alert, "acknowledged_by", None),
            }
        )
    if alert.times_seen > 1:
        events.append(
            {
                "at": alert.last_seen,
                "what": f"Last seen (seen {alert.times_seen} times)",
                "who": None,
            }
        )
    if alert.resolved_at:
        events.append({"at": alert.resolved_at, "what": "Resolved", "who": None})
    if alert.incident_id:
        entries = TimelineEntry.objects.filter(
            incident_id=alert.incident_id, kind=TimelineKind.ALERT, data__alert=alert.pk
        ).select_related("actor")
        events.extend(
            {"at": e.occurred_at, "what": e.body, "who": e.actor, "entry": True}
            for e in entries[:50]
        )
    return sorted(events, key=lambda e: e["at"])


def alert_links(*, alert: Alert) -> list[dict]:
    """Links the sender gave (generatorURL, PagerDuty links, source), http(s) only: a
    `javascript:` or `data:` URL from a monitoring tool must never become a link."""
    candidates: list[tuple[str, object]] = []
    payload = alert.payload if isinstance(alert.payload, dict) else {}
    candidates.append(("Generator", payload.get("generatorURL")))
    links = payload.get("links")
    if isinstance(links, list):
        for link in links[:20]:
            if isinstance(link, dict):
                candidates.append((str(link.get("text") or "Link")[:200], link.get("href")))
    for key in ("runbook_url", "runbook", "dashboard"):
        candidates.append((key.replace("_", " ").capitalize(), (alert.annotations or {}).get(key)))
    candidates.append(("Source", alert.source))
    seen = set()
    out = []
    for text, url in candidates:
        is_web = isinstance(url, str) and url.lower().startswith(("http://", "https://"))
        if is_web and url not in seen:
            seen.add(url)
            out.append({"text": text, "url": url})
    return out


# --- The live refresh ---------------------------------------------------------------------

ALERTS_REVISION_KEY = "alerts-revision"
# Bumped when alerts change in ways the database part of the revision cannot see (an alert
# attached to an incident is a bare UPDATE of its incident column).
ALERTS_GENERATION_KEY = "alerts-generation"
ALERTS_REVISION_TTL = 5


# An intake request marks the alerts page dirty (with Redis's clock) before it stores an
# alert, and drops nothing afterwards: a revision computed less than this long after the
# newest mark is not trusted, so the alert shows on the next poll once it is committed.
# (A request that takes longer than this between its rate check and its INSERT shows
# within ALERTS_REVISION_TTL instead.)
ALERTS_DIRTY_GRACE_MS = 2000
ALERTS_DIRTY_KEY = "alerts-dirty"
_READ_REVISION = """
local t = redis.call('TIME')
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]),
        t[1] * 1000 + math.floor(t[2] / 1000)}
"""


def _alerts_revision_from_database(generation) -> str:
    parts = [str(Alert.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)]
    for status in AlertStatus.values:
        last = (
            Alert.objects.filter(status=status)
            .order_by("-last_seen")
            .values_list("last_seen", flat=True)
            .first()
        )
        parts.append(str(int(last.timestamp() * 1000)) if last else "0")
    parts.append(str(generation))
    return ".".join(parts)


def alerts_revision() -> str:
    """A token that changes whenever an alert is created or changes.

    Read from the cache so that a room full of open alerts pages costs nothing while
    nothing happens. Saved alerts drop the key (below), alert intake marks it dirty;
    repeats of an open alert are counted with a bare UPDATE that sends no signal, so the
    key also expires after a few seconds and is rebuilt from three index lookups (newest
    id; newest last_seen per status through the (status, -last_seen) index) and the
    generation counter.
    """
    store = _revision_store()
    if store is not None:
        return _alerts_revision_in_redis(store)
    try:
        revision = cache.get(ALERTS_REVISION_KEY)
        generation = cache.get(ALERTS_GENERATION_KEY, 0) if revision is None else 0
    except Exception as exc:  # the cache is an optimisation
        log.warning("Alerts revision cache unavailable: %s", exc)
        revision, generation = None, 0
    if revision is None:
        revision = _alerts_revision_from_database(generation)
        try:
            cache.set(ALERTS_REVISION_KEY, revision, ALERTS_REVISION_TTL)
        except Exception as exc:
            log.warning("Alerts revision cache unavailable: %s", exc)
    return revision


@lru_cache(maxsize=4)
def _read_revision_script(client):
    return client.register_script(_READ_REVISION)


def _alerts_revision_in_redis(store) -> str:
    """The revision kept as "<computed at, ms>|<revision>", trusted only when computed
    ALERTS_DIRTY_GRACE_MS after intake's newest mark (Redis's clock for both)."""
    key = cache.make_and_validate_key(ALERTS_REVISION_KEY)
    try:
        kept, dirty, now_ms = _read_revision_script(store)(
            keys=[key, cache.make_and_validate_key(ALERTS_DIRTY_KEY)]
        )
    except Exception as exc:  # the cache is an optimisation
        log.warning("Alerts revision cache unavailable: %s", exc)
        return _alerts_revision_from_database(0)
    if kept is not None:
        computed_ms, _, revision = kept.decode().partition("|")
        if dirty is None or int(computed_ms) > int(dirty) + ALERTS_DIRTY_GRACE_MS:
            return revision
    try:
        generation = cache.get(ALERTS_GENERATION_KEY, 0)
    except Exception:
        generation = 0
    revision = _alerts_revision_from_database(generation)
    try:  # stamped with the time read before the rows: a change in between shows next poll
        store.set(key, f"{now_ms}|{revision}", ex=ALERTS_REVISION_TTL)
    except Exception as exc:
        log.warning("Alerts revision cache unavailable: %s", exc)
    return revision


def alerts_revision_forget(*, changed_unseen: bool = False) -> None:
    """Drop the cached revision; `changed_unseen` also bumps the generation, for changes
    the database part of the revision does not reflect."""
    try:
        if changed_unseen:
            try:
                cache.incr(ALERTS_GENERATION_KEY)
            except ValueError:  # no counter yet
                cache.set(ALERTS_GENERATION_KEY, 1, None)
        store = _revision_store()
        if store is not None:
            store.delete(cache.make_and_validate_key(ALERTS_REVISION_KEY))
        else:
            cache.delete(ALERTS_REVISION_KEY)
    except Exception as exc:  # expires within ALERTS_REVISION_TTL anyway
        log.warning("Could not drop the cached alerts revision: %s", exc)


def alerts_dirty_redis_key() -> str | None:
    """The key alert intake marks (in ratelimit.redis_client()'s Redis) before storing an
    alert; None when the alerts page's revision is kept elsewhere (then intake drops it
    with alerts_revision_forget)."""
    if _revision_store() is None:
        return None
    return cache.make_and_validate_key(ALERTS_DIRTY_KEY)


def _revision_store():
    """The pooled Redis client behind the default cache, when that cache is Redis at
    REDIS_URL; else None (use the cache API). Every new alert drops the revision, and
    Django's Redis cache builds a new client object for each call, which cost more than
    the DEL's round trip itself. Same key (the cache's prefix and version), same store."""
    configured = settings.CACHES.get("default", {})
    if not (
        getattr(settings, "REDIS_URL", "")
        and configured.get("BACKEND") == "django.core.cache.backends.redis.RedisCache"
        and configured.get("LOCATION") == settings.REDIS_URL
    ):
        return None
    from incidents.alerting.ratelimit import redis_client

    return redis_client()


def _alert_saved(sender, instance, **kwargs) -> None:
    transaction.on_commit(alerts_revision_forget)


post_save.connect(_alert_saved, sender=Alert, dispatch_uid="alerts-revision-forget")


def incidents_open_for_attaching(*, user, limit: int = 50) -> list:
    """Open incidents this user may change, newest first: where alerts can be attached."""
    from incidents.models import OPEN_STATUSES, Incident, IncidentGroupObjectPermission
    from incidents.models import IncidentUserObjectPermission as UserPerm
    from incidents.permissions import RESPOND, user_global_perms

    queryset = Incident.objects.filter(status__in=OPEN_STATUSES)
    if not (user.is_authenticated and user.is_active):
        return []
    if not user.is_superuser:
        granted = Q(
            pk__in=UserPerm.objects.filter(user=user, permission__codename=RESPOND).values(
                "content_object_id"
            )
        ) | Q(
            pk__in=IncidentGroupObjectPermission.objects.filter(
                group__in=user.groups.all(), permission__codename=RESPOND
            ).values("content_object_id")
        )
        if f"incidents.{RESPOND}" in user_global_perms(user):
            granted |= Q(restricted=False)
        queryset = queryset.filter(granted)
    return list(queryset.select_related("severity").order_by("-declared_at", "-pk")[:limit])
