from django.contrib import admin

from postmortems.models import (
    ActionItem,
    Postmortem,
    PostmortemExport,
    PostmortemPolicy,
    PostmortemTemplate,
    ReminderSent,
)


@admin.register(PostmortemPolicy)
class PostmortemPolicyAdmin(admin.ModelAdmin):
    list_display = ["severity", "required", "due_working_days"]
    list_editable = ["required", "due_working_days"]


@admin.register(PostmortemTemplate)
class PostmortemTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "is_default"]


@admin.register(Postmortem)
class PostmortemAdmin(admin.ModelAdmin):
    """Read-mostly: postmortems are written on their own pages, through the services."""

    list_display = ["title", "incident", "status", "owner", "due_date", "required"]
    list_filter = ["status", "required"]
    search_fields = ["title", "incident__title"]
    readonly_fields = [f.name for f in Postmortem._meta.fields]

    def get_queryset(self, request):
        from postmortems.permissions import postmortems_visible_to

        return postmortems_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request):
        return False


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin):
    list_display = ["title", "incident", "owner", "team", "status", "priority", "due_date"]
    list_filter = ["status", "priority", "item_type", "team"]
    search_fields = ["title"]
    readonly_fields = [f.name for f in ActionItem._meta.fields]

    def get_queryset(self, request):
        from postmortems.permissions import action_items_visible_to

        return action_items_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request):
        return False


@admin.register(ReminderSent)
class ReminderSentAdmin(admin.ModelAdmin):
    list_display = ["kind", "recipient", "for_date", "subject_key", "claimed_at", "sent_at"]
    list_filter = ["kind"]


@admin.register(PostmortemExport)
class PostmortemExportAdmin(admin.ModelAdmin):
    list_display = ["postmortem", "content_key", "state", "pages", "size", "render_ms"]
    exclude = ["pdf"]
    readonly_fields = ["postmortem", "content_key", "state", "pages", "size", "render_ms", "error"]
