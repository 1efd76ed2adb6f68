from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from incidents.models import Incident, IncidentType, Service, Severity
from incidents.permissions import incidents_visible_to

admin.site.site_header = "Firebreak configuration"
admin.site.site_title = "Firebreak"
admin.site.index_title = "Configure Firebreak"


@admin.register(Severity)
class SeverityAdmin(admin.ModelAdmin):
    list_display = ("name", "label", "level", "update_cadence_minutes")
    ordering = ("level",)


@admin.register(IncidentType)
class IncidentTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "description")


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "runbook_url")
    list_filter = ("team",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name",)


@admin.register(Incident)
class IncidentAdmin(GuardedModelAdmin):
    """Read-only here: incidents change only through the incident page's services."""

    list_display = ("__str__", "severity", "status", "restricted", "declared_at")
    list_filter = ("status", "severity", "restricted")
    search_fields = ("title",)

    def get_queryset(self, request):
        # The admin is another list: restricted incidents stay hidden here too.
        return incidents_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting an incident would delete its audit log; incidents are closed, not deleted.
        return False
