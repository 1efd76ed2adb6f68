"""Template helpers: times in the viewer's zone, with the zone named."""

from __future__ import annotations

import html
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html, strip_tags

register = template.Library()


@register.simple_tag
def when(value: datetime | str | None, style: str = "short"):
    """<time> in the viewer's zone: '14:05 GMT' today, '3 Nov 14:05 GMT' otherwise.

    Accepts ISO 8601 text too, as stored in timeline entries' data.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
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
def plain_text(value: str) -> str:
    """Sanitised HTML to plain text (for one-line summaries); autoescaped on output."""
    return html.unescape(strip_tags(value or ""))
