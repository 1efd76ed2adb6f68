"""Emails that incidents send. Bodies come from templates/emails/."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident


def send_templated_email(*, name: str, to: list[str], context: dict, zone: str = "UTC") -> None:
    """Render subject, text and HTML bodies in the recipient's time zone and send.

    The subject and text templates are plain text: they switch autoescaping off
    themselves, so "Cart & checkout" is not mailed as "Cart &amp; checkout".
    """
    context = {"site_url": settings.SITE_URL, **context}
    try:
        tz = zoneinfo.ZoneInfo(zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    with timezone.override(tz):
        subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
        text = render_to_string(f"emails/{name}-body.txt", context)
        html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=to)
    message.attach_alternative(html, "text/html")
    message.send()


def stakeholder_update_reminder_email(*, incident: Incident, recipient, missed_due: datetime):
    send_templated_email(
        name="update-overdue",
        to=[recipient.email],
        zone=recipient.time_zone,
        context={
            "incident": incident,
            "recipient": recipient,
            "missed_due": missed_due,
            "incident_url": settings.SITE_URL
            + reverse("incidents:detail", kwargs={"pk": incident.pk}),
        },
    )
