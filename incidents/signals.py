from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import Signal, receiver

from incidents.permissions import forget_global_perms
from oncall.models import User

DEFAULT_GROUP = "Viewers"

# Sent after the transaction that changed an incident's status commits, for the layers
# above (postmortems) to react without incidents importing them.
# kwargs: incident_id, from_status, to_status, actor_id
incident_status_changed = Signal()


@receiver(post_save, sender=User)
def new_users_can_read_incidents(sender, instance: User, created: bool, raw: bool, **kwargs):
    """Everyone in the organisation reads unrestricted incidents unless an admin says not."""
    if created and not raw:
        group = Group.objects.filter(name=DEFAULT_GROUP).first()
        if group is not None:
            instance.groups.add(group)


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
def user_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    # Forward: one user's groups/permissions changed. Reverse: a group's members changed;
    # for a clear, the members must be read before they are gone.
    if reverse and action == "pre_clear":
        user_ids = list(instance.user_set.values_list("pk", flat=True))
    elif action in ("post_add", "post_remove"):
        user_ids = list(pk_set or ()) if reverse else [instance.pk]
    elif action == "post_clear" and not reverse:
        user_ids = [instance.pk]
    else:
        return
    transaction.on_commit(lambda: forget_global_perms(user_ids))


@receiver(m2m_changed, sender=Group.permissions.through)
def group_permissions_changed(sender, instance, action, reverse, **kwargs):
    if not action.startswith("post_"):
        return
    groups = [instance] if not reverse else Group.objects.all()
    user_ids = list(User.objects.filter(groups__in=groups).values_list("pk", flat=True))
    transaction.on_commit(lambda: forget_global_perms(user_ids))


@receiver(post_save, sender=User)
def user_saved(sender, instance: User, created: bool, raw: bool, **kwargs):
    # is_superuser or is_active may have changed; cheap to forget on every save.
    if not created:
        transaction.on_commit(lambda: forget_global_perms([instance.pk]))


@receiver(pre_delete, sender=Group)
def group_deleted(sender, instance: Group, **kwargs):
    # Deleting a group sends no m2m_changed: forget its members' permissions here.
    user_ids = list(instance.user_set.values_list("pk", flat=True))
    transaction.on_commit(lambda: forget_global_perms(user_ids))


def connect_paging() -> None:
    """oncall reports pages, acknowledgements and deliveries; write them on the timeline."""
    from incidents import paging
    from oncall.signals import escalation_event, notification_event

    escalation_event.connect(paging.on_escalation_event, dispatch_uid="incidents-paging")
    notification_event.connect(paging.on_notification_event, dispatch_uid="incidents-delivery")


def _forget_severities(sender, **kwargs):
    from incidents.selectors import severities_forget

    transaction.on_commit(severities_forget)
    severities_forget()


def connect_severity_cache() -> None:
    from incidents.models import Severity

    post_save.connect(_forget_severities, sender=Severity, dispatch_uid="severity-cache-save")
    post_delete.connect(_forget_severities, sender=Severity, dispatch_uid="severity-cache-del")
