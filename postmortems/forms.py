from __future__ import annotations

from django import forms

from incidents.forms import FirebreakForm, PersonChoiceField, active_people
from incidents.models import Service
from oncall.models import Team
from postmortems.models import (
    ActionItemPriority,
    ActionItemStatus,
    ActionItemType,
    PostmortemStatus,
)
from postmortems.selectors import ACTIVE

MAX_SECTION_CHARS = 20_000


class IsoDateInput(forms.DateInput):
    """A browser date picker. Its value must be ISO (YYYY-MM-DD): Chromium rejects the
    en-gb "27/11/2026" the locale would render, and the form then submits the date empty."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class PeopleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.display_name


class ForIncidentForm(FirebreakForm):
    """A form whose people pickers offer only those who can read `incident` (an owner or a
    reviewer who cannot open the incident would be sent its title, or nothing useful)."""

    people_fields: tuple[str, ...] = ("owner",)

    def __init__(self, *args, incident=None, **kwargs):
        super().__init__(*args, **kwargs)
        if incident is not None:
            from postmortems.permissions import people_who_can_view

            for name in self.people_fields:
                self.fields[name].queryset = people_who_can_view(incident)


class SectionForm(FirebreakForm):
    body = forms.CharField(
        required=False,
        max_length=MAX_SECTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 8}),
        strip=False,
    )
    base_version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class PreviewForm(FirebreakForm):
    body = forms.CharField(required=False, max_length=MAX_SECTION_CHARS, strip=False)


class DetailsForm(ForIncidentForm):
    title = forms.CharField(max_length=200)
    owner = PersonChoiceField(queryset=active_people(), required=False, empty_label="Nobody")
    due_date = forms.DateField(required=False, widget=IsoDateInput, label="Due date")
    tags = forms.CharField(
        required=False,
        max_length=400,
        help_text="Categories, comma separated (e.g. config change, capacity, dependency).",
    )

    def clean_tags(self) -> list[str]:
        return [t for t in self.cleaned_data["tags"].split(",") if t.strip()]


class TimelineAddForm(FirebreakForm):
    occurred_at = forms.DateTimeField(
        label="When",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text="In your time zone.",
    )
    body = forms.CharField(label="What happened", max_length=2000)


class SubmitForm(ForIncidentForm):
    people_fields = ("reviewers",)

    reviewers = PeopleChoiceField(queryset=active_people(), label="Reviewers")


class CommentForm(FirebreakForm):
    body = forms.CharField(
        label="Comment", max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )
    section = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)


class ActionItemForm(ForIncidentForm):
    title = forms.CharField(max_length=200)
    item_type = forms.ChoiceField(label="Type", choices=ActionItemType.choices)
    priority = forms.TypedChoiceField(
        choices=ActionItemPriority.choices, coerce=int, initial=ActionItemPriority.P3
    )
    owner = PersonChoiceField(queryset=active_people(), required=False, empty_label="No owner")
    team = forms.ModelChoiceField(
        queryset=Team.objects.all(), required=False, empty_label="No team"
    )
    due_date = forms.DateField(required=False, widget=IsoDateInput, label="Due date")
    description = forms.CharField(
        required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3})
    )
    tracker_url = forms.URLField(
        required=False,
        max_length=500,
        label="Tracker link",
        assume_scheme="https",
        help_text="Optional link to the ticket in Jira, Linear, GitHub…",
    )


class QuickActionItemForm(ForIncidentForm):
    """The incident page's follow-up form: the essentials, the rest on the item page."""

    title = forms.CharField(max_length=200)
    item_type = forms.ChoiceField(
        label="Type", choices=ActionItemType.choices, initial=ActionItemType.CORRECTIVE
    )
    owner = PersonChoiceField(queryset=active_people(), required=False, empty_label="No owner")
    due_date = forms.DateField(required=False, widget=IsoDateInput, label="Due date")


class ActionItemStatusForm(FirebreakForm):
    status = forms.ChoiceField(choices=ActionItemStatus.choices)
    reason = forms.CharField(required=False, max_length=2000, label="Reason")

    def clean(self):
        data = super().clean()
        if (
            data.get("status") == ActionItemStatus.WONT_DO
            and not (data.get("reason") or "").strip()
        ):
            self.add_error("reason", "Say why this will not be done.")
        return data


YES_NO = [("", "Any"), ("1", "Yes")]


class ActionItemFilterForm(FirebreakForm):
    q = forms.CharField(required=False, label="Search", max_length=100)
    team = forms.ModelChoiceField(
        queryset=Team.objects.all(), required=False, empty_label="All teams"
    )
    owner = PersonChoiceField(queryset=active_people(), required=False, empty_label="Anyone")
    status = forms.ChoiceField(
        required=False,
        initial=ACTIVE,  # what the unfiltered page shows, so the select says so
        choices=[(ACTIVE, "Open or in progress"), ("", "Any status"), *ActionItemStatus.choices],
    )
    priority = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Any priority"), *ActionItemPriority.choices],
    )
    item_type = forms.ChoiceField(
        required=False, label="Type", choices=[("", "Any type"), *ActionItemType.choices]
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), required=False, empty_label="All services"
    )
    overdue = forms.BooleanField(required=False, label="Overdue")
    due_soon = forms.BooleanField(required=False, label="Due soon")


class PostmortemFilterForm(FirebreakForm):
    q = forms.CharField(required=False, label="Search", max_length=100)
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *PostmortemStatus.choices]
    )
    late = forms.BooleanField(required=False, label="Late")
    mine = forms.BooleanField(required=False, label="Mine")
