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

from django.conf import settings
from django.urls import Resolver404, resolve


def machine_endpoint(view):
    """Mark a view that needs none of the browser's middleware (see the module)."""
    view.machine_endpoint = True
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
            if getattr(match.func, "machine_endpoint", False):
                request.resolver_match = match
                return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)
