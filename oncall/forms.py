"""Forms for on-call pages: contact methods and rules, schedules, layers, overrides, policies.

Each form refuses what the schedule engine or the paging engine could not honour (a shift of
no length, a rotation with nobody in it, a step that pages nobody) with an error on the field
a person has to change. Writes that touch several rows happen in one transaction in `save`.
"""

from __future__ import annotations

import re
import secrets
import zoneinfo
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.utils.text import slugify

from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    LayerParticipant,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
    Team,
    User,
)
from oncall.permissions import teams_user_can_edit

WEEKDAYS = [
    ("0", "Mon"),
    ("1", "Tue"),
    ("2", "Wed"),
    ("3", "Thu"),
    ("4", "Fri"),
    ("5", "Sat"),
    ("6", "Sun"),
]
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_INTERNATIONAL_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_RULE_DELAY = 24 * 60
MAX_OVERRIDE = timedelta(days=93)
LOCAL_DATETIME = "%Y-%m-%dT%H:%M"


def active_people():
    return User.objects.filter(is_active=True).order_by("first_name", "username")


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return obj.display_name


class PeopleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return obj.display_name


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


# --- Contact methods and personal rules ------------------------------------------------------


class ContactMethodForm(forms.ModelForm):
    """Add or change one way to reach the signed-in person."""

    class Meta:
        model = ContactMethod
        fields = ["kind", "label", "address"]
        labels = {"kind": "Type", "label": "Name (optional)", "address": "Address"}
        widgets = {"kind": forms.RadioSelect}
        help_texts = {
            "label": "How you recognise it, for example “Work phone”.",
            "address": (
                "An email address; a phone number in international format (+44 7700 900123); "
                "or the https URL of a Slack-compatible or signed webhook."
            ),
        }

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if self.instance.pk:
            # The kind decides what the address means: change it by adding a new method.
            self.fields["kind"].disabled = True

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        address = (data.get("address") or "").strip()
        if not kind or not address:
            return data
        if kind == ContactMethod.Kind.EMAIL:
            try:
                validate_email(address)
            except ValidationError:
                self.add_error("address", "Enter an email address, like you@example.com.")
        elif kind == ContactMethod.Kind.SMS:
            phone = _PHONE_SEPARATORS.sub("", address)
            if phone.startswith("00"):
                phone = "+" + phone[2:]
            if not _INTERNATIONAL_PHONE.fullmatch(phone):
                self.add_error(
                    "address",
                    "Enter the phone number in international format: a + and the country "
                    "code, then the number (for example +44 7700 900123).",
                )
            else:
                data["address"] = phone
        else:
            try:
                URLValidator(schemes=["http", "https"])(address)
            except ValidationError:
                self.add_error(
                    "address", "Enter the full webhook URL, starting with https:// (or http://)."
                )
        if "address" not in self.errors:
            data["address"] = data.get("address", address).strip()
        return data

    def save(self, commit: bool = True) -> ContactMethod:
        method = super().save(commit=False)
        method.user = self.user
        if method.kind == ContactMethod.Kind.WEBHOOK and not method.secret:
            method.secret = new_signing_secret()
        if self.instance.pk and "address" in self.changed_data:
            # A corrected address deserves another chance: the next test or page tries it.
            method.disabled_at = None
            method.disabled_reason = ""
        if commit:
            method.save()
        return method


class NotificationRuleForm(forms.ModelForm):
    class Meta:
        model = NotificationRule
        fields = ["contact_method", "delay_minutes"]
        labels = {"contact_method": "Notify me by", "delay_minutes": "After (minutes)"}

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["contact_method"].queryset = ContactMethod.objects.filter(user=user)
        self.fields["contact_method"].empty_label = None
        self.fields["delay_minutes"].widget.attrs.update(min=0, max=MAX_RULE_DELAY, step=1)
        self.fields["delay_minutes"].help_text = "0 means at once."

    def clean_delay_minutes(self):
        delay = self.cleaned_data["delay_minutes"]
        if delay is not None and delay > MAX_RULE_DELAY:
            raise ValidationError("Choose a delay of at most 1,440 minutes (a day).")
        return delay

    def clean(self):
        data = super().clean()
        method, delay = data.get("contact_method"), data.get("delay_minutes")
        if method is not None and delay is not None:
            clash = NotificationRule.objects.filter(contact_method=method, delay_minutes=delay)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("delay_minutes", f"You already have a rule for {method} then.")
        return data

    def save(self, commit: bool = True) -> NotificationRule:
        rule = super().save(commit=False)
        rule.user = self.user
        if commit:
            rule.save()
        return rule


# --- Schedules ----------------------------------------------------------------------------


def _zone_choices() -> list[tuple[str, str]]:
    return [(z, z.replace("_", " ")) for z in sorted(zoneinfo.available_timezones())]


class TeamChoiceField(forms.ModelChoiceField):
    pass


class ScheduleForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=_zone_choices,
        help_text="Handoffs happen at the same local time in this zone, through summer time.",
    )

    class Meta:
        model = Schedule
        fields = ["name", "team", "time_zone", "description"]
        labels = {"team": "Owning team"}
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        teams = teams_user_can_edit(user)
        self.fields["team"].queryset = teams
        self.fields["team"].required = not user.is_staff
        self.fields["team"].help_text = "Its members may change the schedule."

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        slug = slugify(name)
        if not slug:
            raise ValidationError("Use at least one letter or digit in the name.")
        clash = Schedule.objects.filter(slug=slug)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError("Another schedule already has this name.")
        return name

    def save(self, commit: bool = True) -> Schedule:
        schedule = super().save(commit=False)
        if not schedule.slug:
            schedule.slug = slugify(schedule.name)[:100]
        if commit:
            schedule.save()
        return schedule


class LayerForm(forms.ModelForm):
    """A rotation: participants in order (one select per position), shift length, first
    handoff and an optional restriction to some weekdays and local hours."""

    EMPTY_SLOTS = 3

    restrict_weekdays = forms.MultipleChoiceField(
        choices=WEEKDAYS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only on these days",
        help_text="Leave all unticked for every day.",
    )

    class Meta:
        model = ScheduleLayer
        fields = [
            "name",
            "level",
            "shift_unit",
            "shift_count",
            "start_date",
            "handoff_time",
            "restrict_weekdays",
            "restrict_start",
            "restrict_end",
        ]
        labels = {
            "level": "Level",
            "shift_count": "Shift length",
            "shift_unit": "Shift unit",
            "start_date": "First handoff on",
            "handoff_time": "Handoff time",
            "restrict_start": "Only from",
            "restrict_end": "Until",
        }
        help_texts = {
            "level": "Higher layers win where they have someone on call.",
            "start_date": "The first person in the rotation starts then.",
            "handoff_time": "Local time in the schedule's zone.",
            "restrict_end": "A window ending before it starts runs past midnight (18:00–08:00).",
        }
        widgets = {
            "start_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "handoff_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "restrict_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "restrict_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args, schedule: Schedule, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.fields["shift_count"].min_value = None  # our own message below, not Django's
        self.fields["shift_count"].validators = []
        self.fields["shift_count"].widget.attrs.update(min=1)
        existing = (
            list(self.instance.participants.order_by("position").values_list("user_id", flat=True))
            if self.instance.pk
            else []
        )
        if self.instance.pk:
            self.initial["restrict_weekdays"] = list(self.instance.restrict_weekdays)
        people = active_people()
        self.participant_names = []
        for index in range(len(existing) + self.EMPTY_SLOTS):
            name = f"participant_{index}"
            self.fields[name] = PersonChoiceField(
                queryset=people,
                required=False,
                label=f"{index + 1}.",
                empty_label="—",
                initial=existing[index] if index < len(existing) else None,
            )
            self.participant_names.append(name)

    @property
    def participant_fields(self):
        return [self[name] for name in self.participant_names]

    @property
    def other_fields(self):
        return [f for f in self.visible_fields() if f.name not in self.participant_names]

    def clean_shift_count(self):
        count = self.cleaned_data.get("shift_count")
        if count is None or count < 1:
            raise ValidationError("A shift must last at least one hour, day or week.")
        if count > 1000:
            raise ValidationError("Choose a shift of at most 1,000 units.")
        return count

    def clean_restrict_weekdays(self):
        days = sorted(set(self.cleaned_data.get("restrict_weekdays") or []))
        return "" if len(days) == 7 else "".join(days)

    def clean(self):
        data = super().clean()
        self.participants = [
            data[name] for name in self.participant_names if data.get(name) is not None
        ]
        if not self.participants:
            self.add_error(
                "participant_0", "A rotation needs at least one person: choose who is first."
            )
        start, end = data.get("restrict_start"), data.get("restrict_end")
        if (start is None) != (end is None):
            missing = "restrict_end" if end is None else "restrict_start"
            self.add_error(missing, "Give both ends of the window, or neither.")
        elif start is not None and start == end:
            self.add_error(
                "restrict_end",
                "The window starts and ends at the same time, so it has no length.",
            )
        return data

    @transaction.atomic
    def save(self, commit: bool = True) -> ScheduleLayer:
        layer = super().save(commit=False)
        layer.schedule = self.schedule
        layer.restrict_weekdays = self.cleaned_data["restrict_weekdays"]
        layer.save()
        layer.participants.all().delete()
        LayerParticipant.objects.bulk_create(
            LayerParticipant(layer=layer, user=user, position=position)
            for position, user in enumerate(self.participants)
        )
        return layer


class OverrideForm(forms.ModelForm):
    """Someone covers a time range. Times are typed in the viewer's own zone."""

    user = PersonChoiceField(queryset=active_people(), label="Who covers")
    replaces = PersonChoiceField(
        queryset=active_people(), required=False, label="Instead of", empty_label="Whoever it is"
    )

    class Meta:
        model = ScheduleOverride
        fields = ["user", "replaces", "starts_at", "ends_at"]
        labels = {"starts_at": "From", "ends_at": "Until"}
        widgets = {
            "starts_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format=LOCAL_DATETIME
            ),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_DATETIME),
        }

    def __init__(self, *args, schedule: Schedule, created_by: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.created_by = created_by
        self.fields["user"].queryset = active_people()
        self.fields["replaces"].queryset = active_people()

    def clean(self):
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end:
            if end <= start:
                self.add_error("ends_at", "The override must end after it starts.")
            elif end - start > MAX_OVERRIDE:
                self.add_error("ends_at", "An override can cover at most 93 days.")
        return data

    def save(self, commit: bool = True) -> ScheduleOverride:
        override = super().save(commit=False)
        override.schedule = self.schedule
        override.created_by = self.created_by
        if commit:
            override.save()
        return override


class TakeShiftForm(forms.Form):
    """'Take this shift' from the calendar: the viewer covers exactly that shift."""

    start = forms.DateTimeField()
    end = forms.DateTimeField()
    replaces = forms.ModelChoiceField(queryset=User.objects.all(), required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end <= start:
                raise ValidationError("That shift has no length.")
            if end - start > MAX_OVERRIDE:
                raise ValidationError("That shift is too long to take in one go.")
        return data


# --- Escalation policies ------------------------------------------------------------------


class PolicyForm(forms.ModelForm):
    class Meta:
        model = EscalationPolicy
        fields = ["name", "team", "description", "repeat_count"]
        labels = {"team": "Owning team", "repeat_count": "Repeat"}
        help_texts = {
            "repeat_count": "How many more times the whole policy runs if nobody acknowledges.",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_user_can_edit(user)
        self.fields["team"].required = not user.is_staff
        self.fields["team"].help_text = "Its members may change the policy."
        self.fields["repeat_count"].widget.attrs.update(min=0, max=9)

    def clean_repeat_count(self):
        value = self.cleaned_data["repeat_count"]
        if value is not None and value > 9:
            raise ValidationError("Repeat at most 9 times.")
        return value


class StepForm(forms.Form):
    delay_minutes = forms.IntegerField(
        label="Then wait (minutes)",
        initial=15,
        help_text="Before the next step, if nobody acknowledges.",
        widget=forms.NumberInput(attrs={"min": 1, "max": 1440}),
    )
    users = PeopleChoiceField(
        queryset=active_people(),
        required=False,
        label="People",
        widget=forms.CheckboxSelectMultiple,
    )
    schedules = forms.ModelMultipleChoiceField(
        queryset=Schedule.objects.all(),
        required=False,
        label="Whoever is on call on",
        widget=forms.CheckboxSelectMultiple,
    )
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.all(),
        required=False,
        label="Every member of",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["users"].queryset = active_people()
        self.fields["schedules"].queryset = Schedule.objects.all()
        self.fields["teams"].queryset = Team.objects.all()

    def clean_delay_minutes(self):
        delay = self.cleaned_data["delay_minutes"]
        if delay < 1:
            raise ValidationError("Wait at least one minute, so people have time to acknowledge.")
        if delay > 1440:
            raise ValidationError("Wait at most 1,440 minutes (a day).")
        return delay

    def clean(self):
        data = super().clean()
        if self.cleaned_data.get("DELETE"):
            return data
        if not (data.get("users") or data.get("schedules") or data.get("teams")):
            raise ValidationError("This step pages nobody: choose a person, schedule or team.")
        return data


class BaseStepFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        if not self.kept_forms:
            raise ValidationError("A policy needs at least one step.")

    @property
    def kept_forms(self):
        """Existing steps, and new ones somebody filled in, minus those ticked for removal."""
        initial = self.initial_form_count()
        return [
            f
            for i, f in enumerate(self.forms)
            if (i < initial or f.has_changed()) and not self._should_delete_form(f)
        ]


StepFormSet = forms.formset_factory(
    StepForm, formset=BaseStepFormSet, extra=1, can_delete=True, max_num=20, validate_max=True
)


def step_initial(policy: EscalationPolicy) -> list[dict]:
    rows = []
    for step in policy.steps.prefetch_related("targets"):
        targets = list(step.targets.all())
        rows.append(
            {
                "delay_minutes": step.delay_minutes,
                "users": [t.user_id for t in targets if t.kind == StepTarget.Kind.USER],
                "schedules": [t.schedule_id for t in targets if t.kind == StepTarget.Kind.SCHEDULE],
                "teams": [t.team_id for t in targets if t.kind == StepTarget.Kind.TEAM],
            }
        )
    return rows


@transaction.atomic
def policy_save(*, form: PolicyForm, steps: BaseStepFormSet) -> EscalationPolicy:
    """Save the policy and replace its steps. Running escalations keep the snapshot taken
    when they started, so rewriting the steps never changes them."""
    policy = form.save()
    policy.steps.all().delete()
    for position, step_form in enumerate(steps.kept_forms):
        data = step_form.cleaned_data
        step = EscalationStep.objects.create(
            policy=policy, position=position, delay_minutes=data["delay_minutes"]
        )
        StepTarget.objects.bulk_create(
            [StepTarget(step=step, kind="user", user=u) for u in data["users"]]
            + [StepTarget(step=step, kind="schedule", schedule=s) for s in data["schedules"]]
            + [StepTarget(step=step, kind="team", team=t) for t in data["teams"]]
        )
    return policy
