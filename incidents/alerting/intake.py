"""Alert intake endpoints: the secret token in the URL is the credential, so there is no
session and no CSRF. Monitoring tools post here; people never see these pages."""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from incidents.alerting import parsers
from incidents.alerting.middleware import machine_endpoint
from incidents.alerting.ratelimit import Verdict
from incidents.alerting.services import alerts_ingest, integration_admit
from incidents.models import IntegrationKind


def require_POST(view):  # noqa: N802  (named like Django's, which answers an empty 405)
    """POST only, refused in JSON like every other answer here: a sender that GETs the
    URL by mistake should read why."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if request.method != "POST":
            response = JsonResponse(
                {"status": "method not allowed", "message": "Send events with POST."},
                status=405,
            )
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _not_found() -> JsonResponse:
    return JsonResponse({"status": "not found", "message": "No such integration."}, status=404)


def _invalid(error: parsers.InvalidEvent) -> JsonResponse:
    return JsonResponse(
        {"status": "invalid event", "message": error.message, "errors": error.errors}, status=400
    )


def _limited(kind: str, verdict: Verdict) -> JsonResponse:
    """Over the integration's rate limit. Alertmanager retries a 5xx and drops a 4xx, so it
    gets a 503; PagerDuty-style senders get PagerDuty's 429. Nothing has been written."""
    status = 503 if kind == IntegrationKind.ALERTMANAGER else 429
    response = JsonResponse(
        {
            "status": "throttle exceeded",
            "message": "Too many events for this integration; retry after the given delay.",
        },
        status=status,
    )
    response["Retry-After"] = str(verdict.retry_after)
    return response


def _read_body(request: HttpRequest) -> bytes:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = parsers.InvalidEvent(f"The body is larger than {parsers.MAX_BODY_BYTES // 1024} KB.")
    if declared > parsers.MAX_BODY_BYTES:
        raise too_big
    body = request.read(parsers.MAX_BODY_BYTES + 1)
    if len(body) > parsers.MAX_BODY_BYTES:
        raise too_big
    return body


def _receive(request: HttpRequest, token: str, kind: str) -> JsonResponse:
    integration, verdict = integration_admit(token, kind=kind)
    if integration is None:
        return _not_found()
    if not verdict.allowed:
        return _limited(kind, verdict)
    try:
        body = _read_body(request)
        if kind == IntegrationKind.ALERTMANAGER:
            events = parsers.parse_alertmanager(body)
        elif kind == IntegrationKind.PAGERDUTY:
            events = [parsers.parse_pagerduty(body)[0]]
        else:
            events = parsers.parse_generic(body, integration.field_mapping)
    except parsers.InvalidEvent as error:
        return _invalid(error)
    results = alerts_ingest(integration=integration, events=events, revision_marked=verdict.marked)
    if kind == IntegrationKind.ALERTMANAGER:
        return JsonResponse({"status": "success", "alerts": len(results)})
    return JsonResponse(
        {"status": "success", "message": "Event processed", "dedup_key": results[0].dedup_key},
        status=202,
    )


@machine_endpoint
@csrf_exempt
@require_POST
def alertmanager_webhook(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.ALERTMANAGER)


@machine_endpoint
@csrf_exempt
@require_POST
def pagerduty_events(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.PAGERDUTY)


@machine_endpoint
@csrf_exempt
@require_POST
def pagerduty_enqueue(request: HttpRequest) -> JsonResponse:
    """PagerDuty's own shape: one URL, the token in the body's routing_key."""
    try:
        body = _read_body(request)
        event, routing_key = parsers.parse_pagerduty(body)
    except parsers.InvalidEvent as error:
        return _invalid(error)
    if not routing_key:
        return _invalid(
            parsers.InvalidEvent("Event object is invalid", ["routing_key is required."])
        )
    integration, verdict = integration_admit(routing_key, kind=IntegrationKind.PAGERDUTY)
    if integration is None:
        return _not_found()
    if not verdict.allowed:
        return _limited(IntegrationKind.PAGERDUTY, verdict)
    result = alerts_ingest(integration=integration, events=[event], revision_marked=verdict.marked)[
        0
    ]
    return JsonResponse(
        {"status": "success", "message": "Event processed", "dedup_key": result.dedup_key},
        status=202,
    )


@machine_endpoint
@csrf_exempt
@require_POST
def generic_webhook(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.GENERIC)
