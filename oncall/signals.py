"""Events oncall tells the layers above about, without importing them.

All are sent after the transaction that caused them commits. Receivers get
`subject_key` (what the escalation is about, e.g. "incident:42") and:

escalation_event   kind: "paged" (user_id, step_index, cycle, reason), "acknowledged"
                   (user_id, via), "exhausted", "unreachable" (user_id), "nobody"
                   (step_index, cycle: the step found nobody to page)
notification_event kind: "sent" | "failed" | "retrying" | "throttled"; user_id, method
                   (e.g. "SMS"), detail
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import Signal, receiver

from oncall.models import ContactMethod, NotificationRule, User

escalation_event = Signal()
notification_event = Signal()


def send_on_commit(signal: Signal, **kwargs) -> None:
    transaction.on_commit(lambda: signal.send(sender=None, **kwargs))


@receiver(post_save, sender=User)
def new_people_can_be_paged_by_email(sender, instance: User, created: bool, raw: bool, **kwargs):
    """Sensible default notification rules for a new person: email at once."""
    if created and not raw and instance.email:
        method = ContactMethod.objects.create(
            user=instance, kind=ContactMethod.Kind.EMAIL, address=instance.email, label="Work email"
        )
        NotificationRule.objects.create(user=instance, contact_method=method, delay_minutes=0)
