from __future__ import annotations

from django import forms

from incidents.statuspages.models import (
    Component,
    ComponentStatus,
    PublicStatus,
    StatusPage,
)
from incidents.statuspages.services import MESSAGE_MAX_LENGTH


class PublicUpdateForm(forms.Form):
    pages = forms.ModelMultipleChoiceField(
        queryset=StatusPage.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        label="Publish to",
        error_messages={"required": "Choose at least one status page to publish to."},
    )
    title = forms.CharField(
        max_length=200,
        required=False,
        label="Public title",
        help_text="What readers of the page see instead of the incident's own title.",
    )
    status = forms.ChoiceField(choices=PublicStatus.choices, initial=PublicStatus.INVESTIGATING)
    message = forms.CharField(
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Markdown. Say what is affected, what you are doing and when you will update.",
        error_messages={"required": "Write a message: that is what readers of the page see."},
    )

    def __init__(self, *args, pages=None, **kwargs):
        super().__init__(*args, **kwargs)
        if pages is not None:
            self.fields["pages"].queryset = StatusPage.objects.filter(pk__in=[p.pk for p in pages])


class ComponentStatusesForm(forms.Form):
    """One status field per component, named component-<id>. Only changed values count."""

    def __init__(self, *args, components: list[Component], **kwargs):
        super().__init__(*args, **kwargs)
        self.components = components
        for component in components:
            self.fields[f"component-{component.pk}"] = forms.ChoiceField(
                choices=ComponentStatus.choices,
                initial=component.status,
                label=component.name,
                required=False,
            )

    def changes(self) -> dict[int, str]:
        changed = {}
        for component in self.components:
            value = self.cleaned_data.get(f"component-{component.pk}")
            if value and value != component.status:
                changed[component.pk] = value
        return changed
