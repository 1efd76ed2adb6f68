from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.dispatch import receiver

from oncall.models import User

DEFAULT_GROUP = "Viewers"


@receiver(post_save, sender=User)
def new_users_can_read_incidents(sender, instance: User, created: bool, raw: bool, **kwargs):
    """Everyone in the organisation reads unrestricted incidents unless an admin says not."""
    if created and not raw:
        group = Group.objects.filter(name=DEFAULT_GROUP).first()
        if group is not None:
            instance.groups.add(group)
