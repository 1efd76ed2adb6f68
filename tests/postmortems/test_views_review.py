"""Review: every named reviewer approves before publishing; reviewers review, not edit."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from postmortems import services
from postmortems.models import PostmortemStatus
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rita(db):
    return make_user("rita", first_name="Rita")


@pytest.fixture
def in_review(postmortem, commander, rita, viewer):
    return services.postmortem_submit_for_review(
        postmortem=postmortem, actor=commander, reviewers=[rita, viewer]
    )


def test_it_cannot_be_published_while_an_approval_is_pending(in_review, commander, rita):
    client = client_for(commander)
    url = reverse("postmortems:detail", args=[in_review.pk])
    page = client.get(url).content.decode()
    assert "It is published once every reviewer has approved it. Waiting for Rita, Sid." in page
    assert 'aria-describedby="publish-rule" disabled>Publish' in page

    response = client.post(reverse("postmortems:publish", args=[in_review.pk]))
    assert response.status_code == 422
    assert "Waiting for Rita, Sid" in response.content.decode()
    in_review.refresh_from_db()
    assert in_review.status == PostmortemStatus.IN_REVIEW

    services.postmortem_approve(postmortem=in_review, actor=rita)
    assert client.post(reverse("postmortems:publish", args=[in_review.pk])).status_code == 422
    client_for(in_review.reviewers.get(user__username="sid").user).post(
        reverse("postmortems:approve", args=[in_review.pk])
    )
    assert client.post(reverse("postmortems:publish", args=[in_review.pk])).status_code == 302
    in_review.refresh_from_db()
    assert in_review.status == PostmortemStatus.PUBLISHED


def test_a_reviewer_who_is_a_viewer_may_comment_and_approve_but_not_edit_or_publish(
    in_review, viewer, rita
):
    client = client_for(viewer)
    page = client.get(reverse("postmortems:detail", args=[in_review.pk])).content.decode()
    assert ">Approve</button>" in page and 'name="body"' in page  # comment box
    assert ">Publish</button>" not in page and "Save details" not in page

    comment = client.post(
        reverse("postmortems:comment_add", args=[in_review.pk]),
        {"body": "Say what the alert threshold was.", "section": "detection"},
    )
    assert comment.status_code == 302
    assert in_review.comments.filter(author=viewer).exists()
    assert client.post(reverse("postmortems:approve", args=[in_review.pk])).status_code == 302

    services.postmortem_approve(postmortem=in_review, actor=rita)
    assert client.post(reverse("postmortems:publish", args=[in_review.pk])).status_code == 403
    details = client.post(
        reverse("postmortems:details", args=[in_review.pk]),
        {"details-title": "Renamed by a viewer"},
    )
    assert details.status_code == 403
    save = client.post(
        reverse("postmortems:section_save", args=[in_review.pk, "summary"]),
        {"body": "Rewritten", "base_version": 0},
    )
    assert save.status_code == 403
    in_review.refresh_from_db()
    assert in_review.status == PostmortemStatus.IN_REVIEW
    assert in_review.title != "Renamed by a viewer"


def test_a_published_postmortem_takes_no_comments(in_review, commander, rita, viewer):
    services.postmortem_approve(postmortem=in_review, actor=rita)
    services.postmortem_approve(postmortem=in_review, actor=viewer)
    services.postmortem_publish(postmortem=in_review, actor=commander)
    response = client_for(commander).post(
        reverse("postmortems:comment_add", args=[in_review.pk]), {"body": "Late thought"}
    )
    assert response.status_code == 422
    assert "takes no comments" in response.content.decode()
    assert not in_review.comments.exists()
