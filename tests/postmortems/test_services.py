"""Creation rules, due dates, blameless sections, concurrent edits, review workflow."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from incidents.models import TimelineKind
from postmortems import services
from postmortems.models import (
    ActionItemStatus,
    Postmortem,
    PostmortemPolicy,
    PostmortemStatus,
    SectionRevision,
)
from postmortems.tasks import postmortem_policy_sweep
from tests.factories import make_incident, make_user
from tests.postmortems.conftest import resolve

pytestmark = pytest.mark.django_db


def test_the_policy_migration_requires_sev1_and_sev2_within_five_working_days():
    policies = {p.severity.name: p for p in PostmortemPolicy.objects.select_related("severity")}
    assert {n for n, p in policies.items() if p.required} == {"SEV1", "SEV2"}
    assert policies["SEV1"].due_working_days == 5


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (dt.date(2025, 3, 7), 5, dt.date(2025, 3, 14)),  # Friday -> next Friday
        (dt.date(2025, 3, 8), 5, dt.date(2025, 3, 14)),  # Saturday -> Friday
        (dt.date(2025, 3, 10), 1, dt.date(2025, 3, 11)),
        (dt.date(2025, 3, 14), 1, dt.date(2025, 3, 17)),  # Friday + 1 -> Monday
    ],
)
def test_working_days_skip_weekends(start, days, due):
    assert services.add_working_days(start, days) == due


def test_resolving_a_sev2_creates_its_postmortem_with_owner_and_due_date(
    commander, django_capture_on_commit_callbacks
):
    with time_machine.travel(dt.datetime(2025, 3, 7, 15, 0, tzinfo=dt.UTC), tick=False):
        incident = make_incident(declared_by=commander, severity_name="SEV2")
        with django_capture_on_commit_callbacks(execute=True):
            resolve(incident, commander)
    postmortem = Postmortem.objects.get(incident=incident)
    assert postmortem.required
    assert postmortem.owner == commander  # the commander owns it
    assert postmortem.due_date == dt.date(2025, 3, 14)
    assert postmortem.status == PostmortemStatus.DRAFT
    assert incident.timeline.filter(
        kind=TimelineKind.DETAILS, body__startswith="Postmortem started"
    ).exists()


def test_a_late_postmortem_shows_as_late_until_published(postmortem, commander):
    Postmortem.objects.filter(pk=postmortem.pk).update(due_date=dt.date(2025, 1, 10))
    postmortem.refresh_from_db()
    assert postmortem.is_late(dt.date(2025, 1, 11))
    assert not postmortem.is_late(dt.date(2025, 1, 10))
    postmortem.status = PostmortemStatus.PUBLISHED
    assert not postmortem.is_late(dt.date(2025, 1, 11))


def test_sev3_and_drills_need_no_postmortem(commander, django_capture_on_commit_callbacks):
    sev3 = make_incident(declared_by=commander, severity_name="SEV3")
    drill = make_incident(declared_by=commander, severity_name="SEV1")
    drill.is_drill = True
    drill.save()
    with django_capture_on_commit_callbacks(execute=True):
        resolve(sev3, commander)
        resolve(drill, commander)
    assert not Postmortem.objects.exists()


def test_the_sweep_creates_required_postmortems_a_lost_signal_missed(commander):
    incident = make_incident(declared_by=commander, severity_name="SEV1")
    resolve(incident, commander)  # on_commit never runs in this test: the signal is "lost"
    assert not Postmortem.objects.exists()
    assert postmortem_policy_sweep()["created"] == 1
    assert postmortem_policy_sweep()["created"] == 0
    assert Postmortem.objects.filter(incident=incident, required=True).count() == 1


def test_creating_twice_returns_the_same_postmortem(postmortem, commander):
    again = services.postmortem_create(incident=postmortem.incident, actor=commander)
    assert again.pk == postmortem.pk
    assert Postmortem.objects.count() == 1


def test_an_open_incident_cannot_have_a_postmortem_yet(commander):
    incident = make_incident(declared_by=commander)
    with pytest.raises(services.PostmortemRefused, match="resolved"):
        services.postmortem_create(incident=incident, actor=commander)


def test_blameless_sections_are_filled_from_the_incident(postmortem):
    sections = {s.key: s for s in postmortem.sections.all()}
    assert list(sections) == [
        "summary", "impact", "detection", "response", "recovery", "timeline",
        "contributing_factors", "went_well", "went_poorly", "lucky", "lessons",
    ]  # fmt: skip
    assert "Checkout API, Payments" in sections["impact"].body
    assert "Impact lasted" in sections["impact"].body
    assert "Time to detect" in sections["detection"].body
    assert "Time to acknowledge" in sections["response"].body
    assert "Time to mitigate" in sections["response"].body
    assert "what about the system allowed" in sections["contributing_factors"].prompt.lower()
    assert "who" not in sections["contributing_factors"].title.lower()


def test_pinned_entries_are_the_starting_timeline(postmortem):
    items = list(postmortem.timeline_items.all())
    assert [i.body for i in items] == ["Error rate at **12%** on checkout."]
    assert "<strong>12%</strong>" in items[0].body_html


def test_the_timeline_can_be_chosen_and_extended(postmortem, commander):
    incident_entries = list(postmortem.incident.timeline.order_by("pk"))
    services.postmortem_timeline_choose(
        postmortem=postmortem, actor=commander, entry_ids=[e.pk for e in incident_entries[:3]]
    )
    other = make_incident(declared_by=commander, title="Other")
    foreign = other.timeline.first()
    services.postmortem_timeline_choose(
        postmortem=postmortem,
        actor=commander,
        entry_ids=[e.pk for e in incident_entries[:2]] + [foreign.pk],
    )
    services.postmortem_timeline_add(
        postmortem=postmortem,
        actor=commander,
        occurred_at=incident_entries[0].occurred_at - dt.timedelta(hours=1),
        body="Config change deployed to eu-west-1 (found in the deploy log)",
    )
    items = list(postmortem.timeline_items.all())
    assert len(items) == 3
    assert items[0].found_afterwards  # earliest first
    assert foreign.pk not in {i.source_entry_id for i in items}


def test_a_second_editor_is_refused_and_shown_the_first_editors_text(postmortem, commander):
    raj = make_user("raj", first_name="Raj")
    section = postmortem.sections.get(key="lessons")
    base = section.version
    services.postmortem_section_save(
        postmortem=postmortem, section_key="lessons", actor=commander,
        body="Retries hide overload.", base_version=base,
    )  # fmt: skip
    with pytest.raises(services.SectionConflict) as conflict:
        services.postmortem_section_save(
            postmortem=postmortem, section_key="lessons", actor=raj,
            body="Raj's different lesson", base_version=base,
        )  # fmt: skip
    assert conflict.value.current_body == "Retries hide overload."
    assert conflict.value.edited_by == "Ivy"
    section.refresh_from_db()
    assert section.body == "Retries hide overload."
    # Raj merges and saves on top of the version he has now seen.
    services.postmortem_section_save(
        postmortem=postmortem, section_key="lessons", actor=raj,
        body="Retries hide overload.\n\nAlso: alerts lag.",
        base_version=conflict.value.current_version,
    )  # fmt: skip
    versions = list(
        SectionRevision.objects.filter(section=section)
        .order_by("version")
        .values_list("version", "edited_by__username")
    )
    assert versions == [(1, "ivy"), (2, "raj")]
    assert postmortem.authors.filter(username="raj").exists()


def test_markdown_in_sections_is_sanitised(postmortem, commander):
    section = services.postmortem_section_save(
        postmortem=postmortem, section_key="summary", actor=commander,
        body='Hi <script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1))',
        base_version=0,
    )  # fmt: skip
    assert "<script" not in section.body_html
    assert "onerror" not in section.body_html
    assert "javascript:" not in section.body_html


def test_review_workflow_to_published_and_a_new_revision(postmortem, commander):
    reviewer = make_user("rev", first_name="Rita")
    with pytest.raises(services.PostmortemRefused, match="review"):
        services.postmortem_publish(postmortem=postmortem, actor=commander)
    with pytest.raises(services.PostmortemRefused, match="reviewer"):
        services.postmortem_submit_for_review(postmortem=postmortem, actor=commander, reviewers=[])
    services.postmortem_submit_for_review(
        postmortem=postmortem, actor=commander, reviewers=[reviewer]
    )
    comment = services.postmortem_comment_add(
        postmortem=postmortem,
        actor=reviewer,
        body="Say more about the alert",
        section_key="detection",
    )
    assert comment.section.key == "detection"
    services.postmortem_approve(postmortem=postmortem, actor=reviewer)
    with pytest.raises(services.PostmortemRefused, match="named reviewer"):
        services.postmortem_approve(postmortem=postmortem, actor=commander)
    services.postmortem_publish(postmortem=postmortem, actor=commander)
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.PUBLISHED
    entry = postmortem.incident.timeline.filter(data__action="published").get()
    assert entry.kind == TimelineKind.DETAILS
    assert "Postmortem published" in entry.body

    with pytest.raises(services.PostmortemRefused, match="read-only"):
        services.postmortem_section_save(
            postmortem=postmortem, section_key="summary", actor=commander, body="x", base_version=0
        )
    services.postmortem_start_revision(postmortem=postmortem, actor=commander)
    postmortem.refresh_from_db()
    assert (postmortem.status, postmortem.revision_number) == (PostmortemStatus.DRAFT, 2)


def test_wont_do_needs_a_reason_and_everything_is_on_the_incident_timeline(postmortem, commander):
    item = services.action_item_create(
        incident=postmortem.incident, actor=commander, title="Alert on pool saturation",
        item_type="detective", owner=commander, due_date=timezone.localdate(),
    )  # fmt: skip
    assert item.postmortem == postmortem
    with pytest.raises(services.PostmortemRefused, match="why"):
        services.action_item_set_status(item=item, actor=commander, status="wont_do")
    services.action_item_set_status(
        item=item, actor=commander, status=ActionItemStatus.WONT_DO, reason="Replaced by AI-9"
    )
    item.refresh_from_db()
    assert item.completed_at is not None and item.wont_do_reason == "Replaced by AI-9"
    bodies = list(postmortem.incident.timeline.filter(kind="task").values_list("body", flat=True))
    assert any("follow-up action item" in b for b in bodies)
    assert any("decided not to do" in b and "Replaced by AI-9" in b for b in bodies)
    services.action_item_set_status(item=item, actor=commander, status="open")
    item.refresh_from_db()
    assert item.wont_do_reason == "" and item.completed_at is None
