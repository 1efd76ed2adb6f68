"""Status page factories, exposed as make_* fixtures."""

from __future__ import annotations

import itertools

import pytest

from incidents.statuspages.models import (
    Component,
    ComponentGroup,
    StatusPage,
    StatusPageVisibility,
)

_seq = itertools.count(1)


def make_status_page(
    slug: str | None = None,
    *,
    title: str | None = None,
    visibility: str = StatusPageVisibility.PUBLIC,
    teams=(),
    time_zone: str = "UTC",
) -> StatusPage:
    n = next(_seq)
    page = StatusPage.objects.create(
        slug=slug or f"page-{n}",
        title=title or f"Status {n}",
        visibility=visibility,
        time_zone=time_zone,
    )
    page.teams.set(teams)
    return page


def make_component(
    page: StatusPage, name: str | None = None, *, group: str | None = None, services=(), order=0
) -> Component:
    group_obj = None
    if group:
        group_obj, _ = ComponentGroup.objects.get_or_create(page=page, name=group)
    component = Component.objects.create(
        page=page, group=group_obj, name=name or f"Component {next(_seq)}", order=order
    )
    component.services.set(services)
    return component


@pytest.fixture
def make_status_page_(db):
    return make_status_page


@pytest.fixture
def make_component_(db):
    return make_component


@pytest.fixture
def public_page(db):
    return make_status_page("acme", title="Acme status")
