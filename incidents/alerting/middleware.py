"""Machine endpoints (alert intake, heartbeat pings) answered ahead of the browser's
middleware.

Monitoring tools and cron jobs send no cookies, no CSRF token and no htmx headers: the
token in the URL is their credential. The session, authentication, CSRF, messages, htmx
and time-zone middleware had nothing to do for them but still cost a third of an alert
request's time, during exactly the storms when alerts arrive fastest. So a view marked
with `machine_endpoint`, under one of MACHINE_ENDPOINT_PREFIXES, is called straight from
here, as public status pages are served from their cache ahead of the same middleware
(statuspages.caching). The security middleware and WhiteNoise stay in front of it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.urls import Resolver404, resolve

_MACHINE_VIEWS: set = set()  # the marked functions themselves: a wrapper is not marked


def machine_endpoint(view):
    """Mark a view that needs none of the browser's middleware (see the module)."""
    _MACHINE_VIEWS.add(view)
    return view


class MachineEndpointMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.MACHINE_ENDPOINT_PREFIXES)

    def __call__(self, request):
        if self.prefixes and request.path_info.startswith(self.prefixes):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                return self.get_response(request)
            if match.func in _MACHINE_VIEWS:
                return self._answer(request, match)
        return self.get_response(request)

    @staticmethod
    def _answer(request, match):
        # What the skipped CommonMiddleware and XFrameOptionsMiddleware did that still
        # matters here: ALLOWED_HOSTS (DisallowedHost becomes a logged 400), refused user
        # agents, a Content-Length, the framing header scanners look for.
        request.get_host()
        agent = request.META.get("HTTP_USER_AGENT")
        if agent is not None and any(
            re.search(pattern, agent) for pattern in settings.DISALLOWED_USER_AGENTS
        ):
            raise PermissionDenied("Forbidden user agent")
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
