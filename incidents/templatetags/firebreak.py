"""Template helpers: times in the viewer's zone, with the zone named."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def when(value: datetime | None, style: str = "short"):
    """<time> in the viewer's zone: '14:05 GMT' today, '3 Nov 14:05 GMT' otherwise."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    now = timezone.localtime()
    zone = local.tzname() or ""
    if style == "full" or local.date() != now.date():
        text = f"{local.day} {local:%b} {local:%H:%M} {zone}"
        if local.year != now.year:
            text = f"{local.day} {local:%b %Y} {local:%H:%M} {zone}"
    else:
        text = f"{local:%H:%M} {zone}"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        f"{local:%A %d %B %Y, %H:%M:%S} {timezone.get_current_timezone_name()}",
        text,
    )


@register.simple_tag
def zone_name() -> str:
    return timezone.get_current_timezone_name()


@register.filter
def local_input(value: datetime | None) -> str:
    """Value for <input type=datetime-local> in the viewer's zone."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


@register.filter
def duration(seconds_or_delta) -> str:
    seconds = int(getattr(seconds_or_delta, "total_seconds", lambda: seconds_or_delta)())
    hours, rest = divmod(abs(seconds), 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
