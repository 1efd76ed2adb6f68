"""What a notification says, built from the database rows behind it."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from oncall.models import Notification
from oncall.notifiers import PageMessage
from oncall.services import ack_token


def absolute(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else settings.SITE_URL + url


def page_message(notification: Notification, *, bundled: list[Notification] = ()) -> PageMessage:
    page = notification.page
    escalation = page.escalation
    token = ack_token(escalation_id=escalation.pk, user_id=page.user_id)
    items = tuple(n.page.escalation.title for n in bundled)
    title = (
        f"{len(bundled)} pages for you, held back during an alert storm"
        if bundled
        else escalation.title
    )
    return PageMessage(
        delivery_id=f"firebreak-notification-{notification.pk}",
        title=title,
        summary=escalation.summary or page.reason,
        link_url=absolute(escalation.link_url or "/"),
        ack_url=absolute(reverse("oncall:ack", kwargs={"token": token})),
        recipient_name=page.user.display_name,
        kind="bundle" if bundled else "page",
        items=items,
    )
