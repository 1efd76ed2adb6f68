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
