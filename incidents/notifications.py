"""Emails that incidents send. Bodies come from templates/emails/."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from incidents.models import Incident


def send_templated_email(*, name: str, to: list[str], context: dict) -> None:
    subject = render_to_string(f"emails/{name}-subject.txt", context).strip()
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=to)
    message.attach_alternative(html, "text/html")
    message.send()


def stakeholder_update_reminder_email(*, incident: Incident, recipient, missed_due: datetime):
    send_templated_email(
        name="update-overdue",
        to=[recipient.email],
        context={
            "incident": incident,
            "recipient": recipient,
            "missed_due": missed_due,
            "incident_url": settings.SITE_URL
            + reverse("incidents:detail", kwargs={"pk": incident.pk}),
        },
    )
