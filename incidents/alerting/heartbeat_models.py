"""Heartbeat monitor models (a job pings; silence raises an alert).

Imported at the bottom of incidents/models.py."""

from __future__ import annotations

from django.db import models  # noqa: F401
