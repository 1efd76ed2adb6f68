"""Due dates survive a save: date pickers get ISO values the browser accepts."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse

from postmortems import services
from postmortems.models import Postmortem
from tests.postmortems.formpost import form_data

pytestmark = pytest.mark.django_db

DUE = dt.date(2026, 11, 27)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def date_values(html: str) -> list[str]:
    return re.findall(r'<input type="date" name="[^"]*due_date"[^>]*value="([^"]*)"', html)


def test_the_details_form_shows_the_due_date_in_iso(postmortem, commander):
    Postmortem.objects.filter(pk=postmortem.pk).update(due_date=DUE)
    html = client_for(commander).get(reverse("postmortems:detail", args=[postmortem.pk]))
    assert "2026-11-27" in date_values(html.content.decode())


def test_saving_the_details_unchanged_keeps_the_due_date(postmortem, commander):
    Postmortem.objects.filter(pk=postmortem.pk).update(due_date=DUE)
    client = client_for(commander)
    url = reverse("postmortems:details", args=[postmortem.pk])
    page = client.get(reverse("postmortems:detail", args=[postmortem.pk])).content.decode()
    response = client.post(url, form_data(page, url))
    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.due_date == DUE


def test_editing_an_action_item_unchanged_keeps_its_due_date(postmortem, commander):
    item = services.action_item_create(
        incident=postmortem.incident, actor=commander, title="Alert on error rate",
        item_type="detective", owner=commander, due_date=DUE, postmortem=postmortem,
    )  # fmt: skip
    client = client_for(commander)
    url = reverse("postmortems:action_item_detail", args=[item.pk])
    page = client.get(url).content.decode()
    assert "2026-11-27" in date_values(page)
    response = client.post(url, form_data(page, url))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.due_date == DUE


def test_the_postmortem_page_has_no_duplicate_element_ids(postmortem, commander):
    html = client_for(commander).get(reverse("postmortems:detail", args=[postmortem.pk]))
    ids = re.findall(r'\bid="([^"]+)"', html.content.decode())
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []
    assert "id_details-due_date" in ids and "id_item-due_date" in ids
