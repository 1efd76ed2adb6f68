"""The Atom feed of a status page: every update published to it, newest first.

Links are absolute from SITE_URL (the syndication framework would otherwise take the
request's host): the feed is cached and served to every reader, so the first reader's
Host header must not end up in it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from incidents.statuspages.models import StatusPage, StatusUpdate
from incidents.statuspages.selectors import page_feed_updates


class StatusPageFeed(Feed):
    feed_type = Atom1Feed

    def get_object(self, request, page: StatusPage) -> StatusPage:
        return page

    def title(self, page: StatusPage) -> str:
        return page.title

    def subtitle(self, page: StatusPage) -> str:
        return page.description or f"Updates published to {page.title}"

    def link(self, page: StatusPage) -> str:
        return settings.SITE_URL + reverse("status:page", args=[page.slug])

    def feed_url(self, page: StatusPage) -> str:
        return settings.SITE_URL + reverse("status:feed", args=[page.slug])

    def items(self, page: StatusPage) -> list[StatusUpdate]:
        return page_feed_updates(page=page)

    def item_title(self, update: StatusUpdate) -> str:
        return f"{update.public_title}: {update.get_status_display()}"

    def item_description(self, update: StatusUpdate) -> str:
        return update.message_html  # sanitised when it was published

    def item_link(self, update: StatusUpdate) -> str:
        return self.link(self._page) + f"#update-{update.pk}"

    def item_guid(self, update: StatusUpdate) -> str:
        return f"tag:firebreak,status-update:{self._page.slug}:{update.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, update: StatusUpdate):
        return update.published_at

    def item_updateddate(self, update: StatusUpdate):
        return update.published_at

    def get_feed(self, obj, request):
        self._page = obj
        return super().get_feed(obj, request)
