"""Forms for a service's routing rules and maintenance windows."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.utils import timezone

from incidents.alerting.matchers import MatcherError, format_matchers, parse_matchers
from incidents.models import AlertRule, RuleAction, RuleGrouping, Severity

MAX_WINDOW_MINUTES = 24 * 60
MAX_SCHEDULE_AHEAD = timedelta(days=366)
MAX_MAINTENANCE = timedelta(days=31)


class AlertRuleForm(forms.Form):
    name = forms.CharField(
        max_length=100, required=False, help_text="Optional, e.g. “Database pages”."
    )
    matchers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"}),
        label="Matches alerts where",
        help_text=(
            "One condition per line, all must hold; empty matches every alert. "
            "labels.team = payments · labels.env != staging · "
            "labels.instance =~ db-[0-9]+ · annotations.runbook exists. "
            "Fields: title, severity, source, group_key, integration, labels.<name>, "
            "annotations.<name>."
        ),
    )
    action = forms.ChoiceField(choices=RuleAction.choices, widget=forms.RadioSelect)
    severity = forms.ModelChoiceField(
        queryset=Severity.objects.order_by("level"),
        required=False,
        label="Incident severity",
        help_text="Required when the rule opens incidents.",
    )
    grouping = forms.ChoiceField(
        choices=RuleGrouping.choices, widget=forms.RadioSelect, label="Grouping"
    )
    window_minutes = forms.IntegerField(
        min_value=1,
        max_value=MAX_WINDOW_MINUTES,
        required=False,
        label="Window (minutes)",
        help_text="For time-window grouping; empty uses the site default.",
    )
    auto_resolve = forms.BooleanField(
        required=False, label="Resolve the incident automatically when all its alerts resolve"
    )

    def __init__(self, *args, instance: AlertRule | None = None, **kwargs):
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": instance.name,
                "matchers": format_matchers(instance.matchers),
                "action": instance.action,
                "severity": instance.severity_id,
                "grouping": instance.grouping,
                "window_minutes": instance.window_minutes,
                "auto_resolve": instance.auto_resolve,
            }
        kwargs.setdefault(
            "initial", {"action": RuleAction.OPEN, "grouping": RuleGrouping.GROUP_KEY}
        )
        super().__init__(*args, **kwargs)
        self.fields["window_minutes"].help_text = (
            "For time-window grouping; empty uses the site default "
            f"({settings.ALERT_GROUPING_WINDOW_MINUTES} minutes)."
        )

    def clean_matchers(self) -> list[dict]:
        try:
            return parse_matchers(self.cleaned_data.get("matchers") or "")
        except MatcherError as error:
            raise forms.ValidationError(error.errors) from None

    def clean(self):
        data = super().clean()
        if data.get("action") == RuleAction.OPEN and not data.get("severity"):
            self.add_error("severity", "Choose the severity of the incidents this rule opens.")
        return data


def _local_datetime() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class MaintenanceWindowForm(forms.Form):
    starts_at = forms.DateTimeField(
        label="Starts",
        widget=_local_datetime(),
    )
    ends_at = forms.DateTimeField(
        label="Ends",
        widget=_local_datetime(),
    )
    reason = forms.CharField(max_length=200, help_text="e.g. “Database upgrade to 16”.")

    def __init__(self, *args, zone: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        # Typed in the viewer's zone (the form reads naive times in the active zone).
        self.fields["starts_at"].label = f"Starts ({zone})"
        self.fields["ends_at"].label = f"Ends ({zone})"

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends:
            if ends <= starts:
                self.add_error("ends_at", "The window must end after it starts.")
            elif ends <= timezone.now():
                self.add_error("ends_at", "This window is already over.")
            elif ends - starts > MAX_MAINTENANCE:
                self.add_error("ends_at", "A maintenance window lasts at most 31 days.")
            elif starts > timezone.now() + MAX_SCHEDULE_AHEAD:
                # Also keeps a typo (year 9999, shifted into UTC) from being stored past
                # what Python can read back, which would break the service page for good.
                self.add_error("starts_at", "Schedule maintenance at most a year ahead.")
        return data
