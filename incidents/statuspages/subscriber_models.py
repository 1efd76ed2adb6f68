"""Status page subscribers and scheduled maintenance models.

Imported at the bottom of incidents/models.py."""

from __future__ import annotations

from django.db import models  # noqa: F401
