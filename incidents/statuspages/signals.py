"""What status pages tell the layers above them (subscriber notifications, webhooks).

Both signals are sent after the writing transaction commits and only when something a
reader would notice changed: setting a component to the status it already has, or
publishing nothing, sends nothing.
"""

from __future__ import annotations

from django.dispatch import Signal

# kwargs: update (a StatusUpdate, with its pages and incident)
status_update_published = Signal()

# kwargs: component, old_status, new_status, at (datetime)
component_status_changed = Signal()


def status_page_invalidate(*, page) -> None:
    """Drop every cached rendering of this page (HTML, history, JSON, badge, feed).

    Call after anything shown on the page changed (on commit, so a reader racing the
    transaction cannot re-cache the old state; calling it twice is harmless)."""
    from incidents.statuspages.caching import page_cache_forget

    page_cache_forget(page)
