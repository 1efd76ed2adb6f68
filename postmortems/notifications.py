"""Emails postmortems send. Subject and bodies come from templates/emails/."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone


def send_templated_email(*, name: str, to: list[str], context: dict, time_zone: str = "UTC"):
    """Render in the recipient's zone (times in the email are theirs) and send."""
    import zoneinfo

    context = {"site_url": settings.SITE_URL, **context}
    with timezone.override(zoneinfo.ZoneInfo(time_zone or "UTC")):
        subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
        text = render_to_string(f"emails/{name}-body.txt", context)
        html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=to)
    message.attach_alternative(html, "text/html")
    message.send()
