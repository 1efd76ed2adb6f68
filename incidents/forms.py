from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from incidents.models import (
    DetectionSource,
    IncidentRole,
    IncidentStatus,
    IncidentType,
    Milestone,
    Service,
    Severity,
)


def active_people():
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "username")


class SeverityChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Severity) -> str:
        return f"{obj.name} · {obj.label}"


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.display_name


class IncidentDeclareForm(forms.Form):
    title = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "What is broken?"}),
        error_messages={"required": "Give the incident a title."},
    )
    severity = SeverityChoiceField(
        queryset=Severity.objects.all(),
        widget=forms.RadioSelect,
        empty_label=None,
        error_messages={"required": "Choose a severity: the definitions say which fits."},
    )
    detection_source = forms.ChoiceField(
        choices=DetectionSource.choices,
        widget=forms.RadioSelect,
        initial=DetectionSource.INTERNAL_REPORT,
        label="How was it detected?",
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.select_related("team"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Affected services",
    )
    incident_type = forms.ModelChoiceField(
        queryset=IncidentType.objects.all(), required=False, label="Type"
    )
    commander = PersonChoiceField(
        queryset=active_people(),
        required=False,
        label="Commander",
        help_text="Leave empty to command it yourself.",
    )
    restricted = forms.BooleanField(
        required=False,
        label="Restricted",
        help_text="Only people you grant access to (and role holders) will see it.",
    )
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    impact_started_at = forms.DateTimeField(
        required=False,
        label="Impact started",
        help_text="If it began before now. In your time zone.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the incident a title.")
        return title

    def clean_impact_started_at(self):
        from django.utils import timezone

        value = self.cleaned_data.get("impact_started_at")
        if value and value > timezone.now():
            raise forms.ValidationError("Impact cannot start in the future.")
        return value


class StatusForm(forms.Form):
    to_status = forms.ChoiceField(choices=IncidentStatus.choices)


class SeverityForm(forms.Form):
    severity = SeverityChoiceField(queryset=Severity.objects.all(), empty_label=None)
    reason = forms.CharField(max_length=500, required=False)


class MilestoneForm(forms.Form):
    milestone = forms.ChoiceField(choices=Milestone.choices)
    value = forms.DateTimeField(
        label="Correct time", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    reason = forms.CharField(max_length=500)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=IncidentRole.choices)
    user = PersonChoiceField(queryset=active_people(), label="Person")


class TaskForm(forms.Form):
    title = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "New task"}),
        error_messages={"required": "A task needs a title."},
    )
    owner = PersonChoiceField(queryset=active_people(), required=False)

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("A task needs a title.")
        return title


class TaskOwnerForm(forms.Form):
    owner = PersonChoiceField(queryset=active_people(), required=False)


class DoneForm(forms.Form):
    done = forms.TypedChoiceField(choices=[("1", "done"), ("0", "open")], coerce=lambda v: v == "1")


class PinForm(forms.Form):
    pinned = forms.TypedChoiceField(
        choices=[("1", "pin"), ("0", "unpin")], coerce=lambda v: v == "1"
    )


class MarkdownBodyForm(forms.Form):
    body = forms.CharField(
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write something first."},
    )

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("Write something first.")
        return body


class NoteForm(MarkdownBodyForm):
    pass


class StakeholderUpdateForm(MarkdownBodyForm):
    pass


class DetailsForm(forms.Form):
    title = forms.CharField(max_length=200)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    incident_type = forms.ModelChoiceField(queryset=IncidentType.objects.all(), required=False)
    details_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


class RestrictForm(forms.Form):
    restricted = forms.TypedChoiceField(
        choices=[("1", "restrict"), ("0", "open up")], coerce=lambda v: v == "1"
    )


class ShareForm(forms.Form):
    user = PersonChoiceField(queryset=active_people(), label="Person")
    respond = forms.BooleanField(required=False, label="Can respond")


class IncidentFilterForm(forms.Form):
    STATUS_CHOICES = [("", "Any status"), ("open", "Open"), *IncidentStatus.choices]
    q = forms.CharField(required=False, label="Search", max_length=200)
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    severity = forms.ModelChoiceField(
        queryset=Severity.objects.all(), required=False, empty_label="Any severity"
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), required=False, empty_label="Any service"
    )
    team = forms.ModelChoiceField(queryset=None, required=False, empty_label="Any team")
    mine = forms.BooleanField(required=False, label="Only mine")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from oncall.models import Team

        self.fields["team"].queryset = Team.objects.all()
