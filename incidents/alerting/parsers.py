"""Turn what a monitoring tool sent into alert events. Pure functions: no database, no clock.

Each parser takes the raw request body and returns a list of `AlertEvent`, or raises
`InvalidEvent` with a message and a list of errors a sender can act on. Nothing else may
escape: random and malformed input is tested with hypothesis.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

# PagerDuty Events API v2 limits, applied to every kind of integration.
MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_SOURCE = 255
MAX_GROUP_KEY = 1024
# What is kept of a payload for people to read; the body limit already bounds it.
MAX_STORED_PAYLOAD = 64 * 1024

TRIGGER, ACKNOWLEDGE, RESOLVE = "trigger", "acknowledge", "resolve"
SEVERITIES = ("critical", "error", "warning", "info")
# Severity labels seen in the wild, mapped onto ours. Anything else counts as a warning:
# recorded, but nobody is woken up by a label we do not understand.
SEVERITY_ALIASES = {
    "critical": "critical",
    "crit": "critical",
    "page": "critical",
    "fatal": "critical",
    "error": "error",
    "err": "error",
    "high": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}


class InvalidEvent(Exception):
    """The body cannot be accepted; `errors` says what to fix."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or [message]


@dataclass(frozen=True)
class AlertEvent:
    action: str  # trigger | acknowledge | resolve
    dedup_key: str
    title: str = ""
    severity: str = "warning"
    source: str = ""
    group_key: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    dedup_key_generated: bool = False


def severity_from(value: Any) -> str:
    if isinstance(value, str):
        return SEVERITY_ALIASES.get(value.strip().lower(), "warning")
    return "warning"


def load_json_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidEvent(f"The body is larger than {MAX_BODY_BYTES // 1024} KB.")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        # What the database cannot store: NUL characters and lone surrogates.
        text = json.dumps(data, ensure_ascii=False)
        text.encode("utf-8")
    except RecursionError:
        raise InvalidEvent("The body is nested too deeply to be an alert.") from None
    except (UnicodeError, ValueError):
        raise InvalidEvent("The body is not valid UTF-8 JSON.") from None
    if "\\u0000" in text:
        raise InvalidEvent("The body contains a NUL character.")
    if not isinstance(data, dict):
        raise InvalidEvent("The body must be a JSON object.")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _stored(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as kept on the alert: bounded in size."""
    size = len(json.dumps(payload, default=str))
    if size > MAX_STORED_PAYLOAD:
        return {"truncated": True, "size": size}
    return payload


def _string_map(value: Any, name: str, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{name} must be an object.")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float | bool) or v is None:
            errors.append(f"{name}.{k} must be a string.")
            continue
        out[str(k)] = str(v)
    return out


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


# --- Prometheus Alertmanager (webhook_config, version 4) ---------------------------


def parse_alertmanager(body: bytes) -> list[AlertEvent]:
    data = load_json_object(body)
    errors: list[str] = []
    group_key = data.get("groupKey", "")
    if not isinstance(group_key, str):
        errors.append("groupKey must be a string.")
        group_key = ""
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        errors.append("alerts must be a non-empty list.")
        alerts = []
    common = data.get("status")
    if common is not None and common not in ("firing", "resolved"):
        errors.append("status must be firing or resolved.")
    events = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            errors.append(f"{where} must be an object.")
            continue
        before = len(errors)
        labels = _string_map(alert.get("labels"), f"{where}.labels", errors)
        annotations = _string_map(alert.get("annotations"), f"{where}.annotations", errors)
        status = alert.get("status", common)
        if status not in ("firing", "resolved"):
            errors.append(f"{where}.status must be firing or resolved.")
        fingerprint = alert.get("fingerprint")
        if fingerprint is None:
            # Alertmanager always sends one; for other senders, the label set is the identity.
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[
                :16
            ]
        if not isinstance(fingerprint, str) or not fingerprint.strip():
            errors.append(f"{where}.fingerprint must be a non-empty string.")
        elif len(fingerprint) > MAX_DEDUP_KEY:
            errors.append(f"{where}.fingerprint is longer than {MAX_DEDUP_KEY} characters.")
        for name in ("startsAt", "endsAt", "generatorURL"):
            if alert.get(name) is not None and not isinstance(alert.get(name), str):
                errors.append(f"{where}.{name} must be a string.")
        if len(errors) > before:
            continue
        title = annotations.get("summary") or labels.get("alertname") or "Alert"
        events.append(
            AlertEvent(
                action=TRIGGER if status == "firing" else RESOLVE,
                dedup_key=fingerprint,
                title=_one_line(title, MAX_SUMMARY) or "Alert",
                severity=severity_from(labels.get("severity")),
                source=_one_line(str(alert.get("generatorURL") or ""), MAX_SOURCE),
                group_key=group_key[:MAX_GROUP_KEY],
                labels=labels,
                annotations=annotations,
                payload=_stored(
                    {
                        k: alert.get(k)
                        for k in ("status", "startsAt", "endsAt", "generatorURL", "fingerprint")
                        if k in alert
                    }
                    | {"groupKey": group_key, "receiver": data.get("receiver")}
                ),
            )
        )
    if errors:
        raise InvalidEvent("The Alertmanager notification is not valid.", errors)
    return events


# --- PagerDuty Events API v2 ------------------------------------------------------


def parse_pagerduty(body: bytes) -> tuple[AlertEvent, str]:
    """Returns the event and the routing_key it carried ("" when absent)."""
    data = load_json_object(body)
    errors: list[str] = []
    routing_key = data.get("routing_key", "")
    if not isinstance(routing_key, str):
        errors.append("routing_key must be a string.")
        routing_key = ""
    action = data.get("event_action")
    if action not in (TRIGGER, ACKNOWLEDGE, RESOLVE):
        errors.append("event_action must be one of trigger, acknowledge, resolve.")
    dedup_key = data.get("dedup_key")
    generated = False
    if dedup_key is None or dedup_key == "":
        if action in (ACKNOWLEDGE, RESOLVE):
            errors.append("dedup_key is required for acknowledge and resolve.")
        dedup_key = uuid.uuid4().hex
        generated = True
    elif not isinstance(dedup_key, str):
        errors.append("dedup_key must be a string.")
    elif len(dedup_key) > MAX_DEDUP_KEY:
        errors.append(f"dedup_key is longer than {MAX_DEDUP_KEY} characters.")
    title, severity, source, custom = "", "warning", "", {}
    payload = data.get("payload")
    if action == TRIGGER:
        if not isinstance(payload, dict):
            errors.append("payload is required for trigger and must be an object.")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("payload.summary is required and must be a string.")
            elif len(summary) > MAX_SUMMARY:
                errors.append(f"payload.summary is longer than {MAX_SUMMARY} characters.")
            else:
                title = _one_line(summary, MAX_SUMMARY)
            src = payload.get("source")
            if not isinstance(src, str) or not src.strip():
                errors.append("payload.source is required and must be a string.")
            elif len(src) > MAX_SOURCE:
                errors.append(f"payload.source is longer than {MAX_SOURCE} characters.")
            else:
                source = src
            sev = payload.get("severity")
            if sev not in SEVERITIES:
                errors.append("payload.severity must be one of critical, error, warning, info.")
            else:
                severity = sev
            details = payload.get("custom_details")
            if isinstance(details, dict):
                custom = details
            elif details is not None:
                custom = {"details": details}
    if errors:
        raise InvalidEvent("Event object is invalid", errors)
    stored = {k: v for k, v in data.items() if k != "routing_key"}  # the token is never kept
    labels = {}
    if isinstance(payload, dict):
        for k in ("component", "group", "class"):
            if isinstance(payload.get(k), str):
                labels[k] = payload[k]
    return (
        AlertEvent(
            action=action,
            dedup_key=dedup_key,
            title=title,
            severity=severity,
            source=source,
            labels=labels,
            annotations=custom if all(isinstance(k, str) for k in custom) else {},
            payload=_stored(stored),
            dedup_key_generated=generated,
        ),
        routing_key,
    )


# --- Generic JSON webhook ---------------------------------------------------------

DEFAULT_MAPPING = {
    "title": "title",
    "dedup_key": "dedup_key",
    "severity": "severity",
    "status": "status",
}
STATUS_WORDS = {
    "firing": TRIGGER,
    "trigger": TRIGGER,
    "triggered": TRIGGER,
    "alerting": TRIGGER,
    "problem": TRIGGER,
    "acknowledge": ACKNOWLEDGE,
    "acknowledged": ACKNOWLEDGE,
    "resolve": RESOLVE,
    "resolved": RESOLVE,
    "ok": RESOLVE,
}


def _pick(data: dict[str, Any], path: str) -> Any:
    """A dotted path into nested objects: "alert.labels.severity"."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def parse_generic(body: bytes, mapping: dict[str, str] | None = None) -> list[AlertEvent]:
    data = load_json_object(body)
    fields = DEFAULT_MAPPING | {
        k: v for k, v in (mapping or {}).items() if k in DEFAULT_MAPPING and isinstance(v, str)
    }
    errors: list[str] = []
    title = _pick(data, fields["title"])
    if not isinstance(title, str) or not title.strip():
        errors.append(f"{fields['title']} is required and must be a string.")
        title = ""
    elif len(title) > MAX_SUMMARY:
        errors.append(f"{fields['title']} is longer than {MAX_SUMMARY} characters.")
    key = _pick(data, fields["dedup_key"])
    if key is None or key == "":
        # Repeats of the same message are the same alert.
        key = hashlib.sha256(title.encode()).hexdigest()[:32]
    elif isinstance(key, bool) or not isinstance(key, str | int):
        errors.append(f"{fields['dedup_key']} must be a string.")
        key = ""
    key = str(key)
    if len(key) > MAX_DEDUP_KEY:
        errors.append(f"{fields['dedup_key']} is longer than {MAX_DEDUP_KEY} characters.")
    status = _pick(data, fields["status"])
    if status is None:
        action = TRIGGER
    elif isinstance(status, str) and status.strip().lower() in STATUS_WORDS:
        action = STATUS_WORDS[status.strip().lower()]
    else:
        errors.append(f"{fields['status']} must be one of " + ", ".join(STATUS_WORDS) + ".")
        action = TRIGGER
    if errors:
        raise InvalidEvent("The webhook body is not valid.", errors)
    labels = _pick(data, "labels")
    return [
        AlertEvent(
            action=action,
            dedup_key=key,
            title=_one_line(title, MAX_SUMMARY),
            severity=severity_from(_pick(data, fields["severity"])),
            source=_one_line(str(data.get("source") or ""), MAX_SOURCE),
            labels=_string_map(labels, "labels", []) if isinstance(labels, dict) else {},
            payload=_stored(data),
        )
    ]
