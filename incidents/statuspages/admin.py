"""Admin for status pages: pages with their groups and components inline, update templates.

Registered from incidents/admin.py. A component's status is read-only here: it changes
only through component_status_set, which records the interval the history bars are drawn
from (and tells subscribers)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import transaction
from django.urls import Resolver404, resolve, reverse

from incidents.statuspages.models import (
    Component,
    ComponentGroup,
    StatusPage,
    StatusUpdate,
    StatusUpdateTemplate,
)
from incidents.statuspages.signals import status_page_invalidate


class ComponentGroupInline(admin.TabularInline):
    model = ComponentGroup
    extra = 0
    fields = ("name", "description", "order")


class ComponentInline(admin.TabularInline):
    model = Component
    extra = 0
    fields = ("name", "group", "description", "order", "services", "status")
    readonly_fields = ("status",)
    autocomplete_fields = ("services",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Only this page's groups (the page being edited is in the URL).
        if db_field.name == "group":
            page_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = ComponentGroup.objects.filter(page_id=page_id or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class StatusPageForm(forms.ModelForm):
    class Meta:
        model = StatusPage
        fields = ("title", "slug", "description", "visibility", "teams", "time_zone", "order")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        # /status/manage/ and the like belong to other screens: such a page could never
        # be read at its own address.
        try:
            match = resolve(reverse("status:index") + slug + "/")
        except Resolver404:
            return slug
        if match.view_name != "status:page":
            raise forms.ValidationError(
                f"/status/{slug}/ is already used by another screen; choose another slug."
            )
        return slug


class StatusPageAdmin(admin.ModelAdmin):
    form = StatusPageForm
    list_display = ("title", "slug", "visibility", "time_zone", "order")
    list_filter = ("visibility",)
    search_fields = ("title", "slug")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("teams",)
    fields = ("title", "slug", "description", "visibility", "teams", "time_zone", "order")
    inlines = (ComponentGroupInline, ComponentInline)

    def save_model(self, request, obj, form, change):
        old_slug = None
        if change and "slug" in form.changed_data:
            old_slug = StatusPage.objects.filter(pk=obj.pk).values_list("slug", flat=True).first()
        super().save_model(request, obj, form, change)
        if old_slug:
            # What is cached under the old address would otherwise be served for a while
            # more, however the page changed (made internal, say).
            old = StatusPage(slug=old_slug)
            transaction.on_commit(lambda: status_page_invalidate(page=old))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        page = form.instance
        # Components, groups or visibility changed: readers must see it on the next request.
        transaction.on_commit(lambda: status_page_invalidate(page=page))

    def delete_model(self, request, obj):
        status_page_invalidate(page=obj)
        super().delete_model(request, obj)


class StatusUpdateTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "order")
    fields = ("name", "status", "message", "order")


class StatusUpdateAdmin(admin.ModelAdmin):
    """Read-only: published updates are part of the record (the incident timeline)."""

    list_display = ("incident", "status", "published_at", "author")
    list_select_related = ("incident", "author")
    readonly_fields = ("incident", "pages", "status", "message", "author", "published_at")
    exclude = ("message_html",)

    def get_queryset(self, request):
        # Each update shows its incident (its own title): only incidents this person may see.
        from incidents.permissions import incidents_visible_to

        return (
            super()
            .get_queryset(request)
            .filter(incident__in=incidents_visible_to(request.user).values("pk"))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def register_status_page_admin(site) -> None:
    site.register(StatusPage, StatusPageAdmin)
    site.register(StatusUpdateTemplate, StatusUpdateTemplateAdmin)
    site.register(StatusUpdate, StatusUpdateAdmin)
