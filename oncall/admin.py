from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from oncall.models import Team, TeamMembership, User


@admin.register(User)
class FirebreakUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Firebreak", {"fields": ("time_zone",)}))
    list_display = ("username", "email", "first_name", "last_name", "time_zone", "is_staff")

    def get_readonly_fields(self, request, obj=None):
        # Only superusers hand out superuser status or individual permissions; otherwise an
        # Admin could promote themselves past every restriction.
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name",)
    inlines = [TeamMembershipInline]


# --- Paging configuration ---------------------------------------------------------------
# The on-call pages are the main way to configure these; the admin is the fallback.

from oncall.models import (  # noqa: E402
    ContactMethod,
    Escalation,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
)


@admin.register(ContactMethod)
class ContactMethodAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "label", "address", "disabled_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "address")
    exclude = ("secret",)  # signing secrets are shown once, on the person's profile


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    list_display = ("user", "contact_method", "delay_minutes")


class ScheduleLayerInline(admin.StackedInline):
    model = ScheduleLayer
    extra = 0


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "time_zone")
    prepopulated_fields = {"slug": ("name",)}
    exclude = ("ical_token_hash",)
    inlines = [ScheduleLayerInline]


@admin.register(ScheduleOverride)
class ScheduleOverrideAdmin(admin.ModelAdmin):
    list_display = ("schedule", "user", "replaces", "starts_at", "ends_at")


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    extra = 0


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "repeat_count")
    inlines = [EscalationStepInline]


@admin.register(StepTarget)
class StepTargetAdmin(admin.ModelAdmin):
    list_display = ("step", "kind", "user", "schedule", "team")


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):
    """Read-only: escalations change only through the paging services."""

    list_display = ("subject_key", "title", "state", "started_at", "acknowledged_by")
    list_filter = ("state",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(EscalationAdmin):
    list_display = ("page", "contact_method", "state", "due_at", "sent_at", "attempts")
    list_filter = ("state",)
