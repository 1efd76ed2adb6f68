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


class FirebreakForm(forms.Form):
    """Labels without a trailing colon, the way every page labels fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def active_people():
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "username")


class SeverityChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Severity) -> str:
        return f"{obj.name} · {obj.label}"


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.display_name


class IncidentDeclareForm(FirebreakForm):
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
        help_text="If it began before now. In your own time zone.",
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


class StatusForm(FirebreakForm):
    to_status = forms.ChoiceField(choices=IncidentStatus.choices)
    # The status the page showed when the button was pressed.
    from_status = forms.ChoiceField(choices=IncidentStatus.choices, required=False)


class SeverityForm(FirebreakForm):
    severity = SeverityChoiceField(queryset=Severity.objects.all(), empty_label=None)
    reason = forms.CharField(max_length=500, required=False)
    # The severity the page showed, so a change made meanwhile is never silently undone.
    from_severity = forms.IntegerField(required=False, widget=forms.HiddenInput)


class MilestoneForm(FirebreakForm):
    milestone = forms.ChoiceField(choices=Milestone.choices)
    value = forms.DateTimeField(
        label="Correct time",
        help_text="In your own time zone.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    reason = forms.CharField(
        max_length=500, error_messages={"required": "Say why the milestone is being corrected."}
    )


class RoleForm(FirebreakForm):
    role = forms.ChoiceField(choices=IncidentRole.choices)
    user = PersonChoiceField(
        queryset=active_people(),
        label="Person",
        error_messages={"required": "Choose who takes the role."},
    )


class TaskForm(FirebreakForm):
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


class TaskOwnerForm(FirebreakForm):
    owner = PersonChoiceField(queryset=active_people(), required=False)


class DoneForm(FirebreakForm):
    done = forms.TypedChoiceField(choices=[("1", "done"), ("0", "open")], coerce=lambda v: v == "1")


class PinForm(FirebreakForm):
    pinned = forms.TypedChoiceField(
        choices=[("1", "pin"), ("0", "unpin")], coerce=lambda v: v == "1"
    )


class MarkdownBodyForm(FirebreakForm):
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


class DetailsForm(FirebreakForm):
    title = forms.CharField(max_length=200)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    incident_type = forms.ModelChoiceField(queryset=IncidentType.objects.all(), required=False)
    details_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


class RestrictForm(FirebreakForm):
    restricted = forms.TypedChoiceField(
        choices=[("1", "restrict"), ("0", "open up")], coerce=lambda v: v == "1"
    )


class ShareForm(FirebreakForm):
    user = PersonChoiceField(queryset=active_people(), label="Person")
    respond = forms.BooleanField(required=False, label="Can respond")


class IncidentFilterForm(FirebreakForm):
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


class PageForm(FirebreakForm):
    """Page one person, a schedule's on-call, or a whole escalation policy."""

    user = PersonChoiceField(queryset=active_people(), required=False, label="Person")
    schedule = forms.ModelChoiceField(queryset=None, required=False, label="On call for")
    policy = forms.ModelChoiceField(queryset=None, required=False, label="Escalation policy")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_page_%s")
        super().__init__(*args, **kwargs)
        from oncall.models import EscalationPolicy, Schedule

        self.fields["schedule"].queryset = Schedule.objects.order_by("name")
        self.fields["policy"].queryset = EscalationPolicy.objects.order_by("name")

    def clean(self):
        data = super().clean()
        chosen = [k for k in ("user", "schedule", "policy") if data.get(k)]
        if len(chosen) != 1:
            raise forms.ValidationError("Choose exactly one: a person, a schedule or a policy.")
        return data
