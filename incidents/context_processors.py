from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from incidents.permissions import incident_can_declare


def incident_permissions(request) -> dict:
    """Whether to offer "Declare incident" everywhere, from the cached permission set
    (Django's `perms` would reload every permission from the database on each page)."""
    user = getattr(request, "user", None)
    return {
        "can_declare_incident": SimpleLazyObject(
            lambda: bool(user is not None and incident_can_declare(user))
        )
    }
