from __future__ import annotations

import zoneinfo
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.shortcuts import resolve_url
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect


class ViewerTimezoneMiddleware:
    """Render every time in the signed-in viewer's own zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        zone_name = getattr(user, "time_zone", None) if user and user.is_authenticated else None
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone_name or "UTC"))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo("UTC"))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class HtmxSignInMiddleware:
    """When a session expires, an htmx request (the timeline poll, an action) would follow
    the redirect to the sign-in page and swap that page into a fragment. Send the whole
    browser to sign in instead, coming back to the page the person was on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or response.status_code != 302:
            return response
        login_url = resolve_url(settings.LOGIN_URL)
        if not response["Location"].startswith(login_url):
            return response
        current = urlsplit(htmx.current_url or "/")
        back = current.path + (f"?{current.query}" if current.query else "")
        return HttpResponseClientRedirect(f"{login_url}?{urlencode({'next': back})}")
