from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from incidents.models import (
    Alert,
    HeartbeatMonitor,
    Incident,
    IncidentType,
    Integration,
    Service,
    Severity,
)
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


# --- Alerting ----------------------------------------------------------------------------
# Integrations, alerts and heartbeats change through the service page and the alerts page;
# here they are for looking things up. The token hash is never shown: it is not the URL,
# but it is still a credential's fingerprint and nobody needs to read it.


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "service", "created_at", "rotated_at")
    list_filter = ("kind", "service")
    search_fields = ("name", "service__name")
    list_select_related = ("service",)
    fields = ("service", "kind", "name", "field_mapping", "created_at", "rotated_at")
    readonly_fields = ("service", "kind", "created_at", "rotated_at")

    def has_add_permission(self, request):
        # Created from the service page or `create_integration`, which show the URL once.
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting one would delete its alerts, which are evidence on incidents.
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-only: alert state changes through the alerts page, which writes the timeline."""

    list_display = (
        "title",
        "status",
        "severity",
        "service",
        "integration",
        "incident_link",
        "times_seen",
        "last_seen",
    )
    list_filter = ("status", "severity", "service", "integration__kind")
    search_fields = ("title", "=dedup_key")
    list_select_related = ("service", "integration", "incident")
    date_hierarchy = "last_seen"
    ordering = ("-last_seen",)

    def get_queryset(self, request):
        # Alerts follow their incident's permission here too.
        from incidents.alerting.selectors import alerts_visible_to

        return alerts_visible_to(request.user).select_related("service", "integration", "incident")

    @admin.display(description="Incident", ordering="incident")
    def incident_link(self, obj):
        return obj.incident.reference if obj.incident_id else "—"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HeartbeatMonitor)
class HeartbeatMonitorAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "service",
        "state",
        "interval_minutes",
        "grace_minutes",
        "last_ping_at",
        "due_at",
    )
    list_filter = ("state", "integration__service")
    search_fields = ("integration__name", "integration__service__name")
    list_select_related = ("integration__service",)
    fields = (
        "integration",
        "interval_minutes",
        "grace_minutes",
        "severity",
        "state",
        "last_ping_at",
        "due_at",
        "down_since",
        "created_at",
    )
    readonly_fields = ("integration", "state", "last_ping_at", "due_at", "down_since", "created_at")

    @admin.display(description="Service", ordering="integration__service__name")
    def service(self, obj):
        return obj.integration.service

    def has_add_permission(self, request):
        return False


# --- Status pages (issue 5) -------------------------------------------------------------
from incidents.statuspages.admin import register_status_page_admin  # noqa: E402

register_status_page_admin(admin.site)


# --- Status page subscribers and scheduled maintenance (issue 5) ------------------------
from incidents.models import ScheduledMaintenance, StatusDelivery, StatusSubscriber  # noqa: E402


@admin.register(StatusSubscriber)
class StatusSubscriberAdmin(admin.ModelAdmin):
    """Read and unsubscribe; people subscribe themselves (double opt-in) and managers add
    webhooks on the page's Webhook subscribers screen. The signing secret and the
    confirmation token's hash are never shown."""

    list_display = ("__str__", "page", "kind", "confirmed_at", "unsubscribed_at", "last_error_at")
    list_filter = ("kind", "page")
    search_fields = ("email", "url", "label")
    list_select_related = ("page",)
    fields = (
        "page",
        "kind",
        "email",
        "url",
        "label",
        "components",
        "user",
        "confirmed_at",
        "unsubscribed_at",
        "last_error",
        "last_error_at",
        "created_at",
    )
    readonly_fields = (
        "page",
        "kind",
        "email",
        "url",
        "components",
        "user",
        "confirmed_at",
        "unsubscribed_at",
        "last_error",
        "last_error_at",
        "created_at",
    )
    # Unsubscribing goes through the service (pending deliveries are cancelled too), and
    # `unsubscribed_at` is read-only: clearing it would mail someone who asked to stop.
    actions = ("unsubscribe_selected",)

    @admin.action(description="Unsubscribe the selected subscribers", permissions=["change"])
    def unsubscribe_selected(self, request, queryset):
        from incidents.statuspages.subscriptions import subscriber_unsubscribe

        subscribers = list(queryset.filter(unsubscribed_at__isnull=True))
        for subscriber in subscribers:
            subscriber_unsubscribe(subscriber=subscriber)
        self.message_user(request, f"{len(subscribers)} unsubscribed.")

    def has_add_permission(self, request):
        return False


@admin.register(ScheduledMaintenance)
class ScheduledMaintenanceAdmin(admin.ModelAdmin):
    """Read-only: windows are scheduled and cancelled on the page's Maintenance screen, and
    start and complete by themselves, so their state is never edited by hand."""

    list_display = ("title", "page", "starts_at", "ends_at", "state")
    list_filter = ("state", "page")
    search_fields = ("title",)
    list_select_related = ("page",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StatusDelivery)
class StatusDeliveryAdmin(admin.ModelAdmin):
    """Every notice sent to a subscriber, with its outcome (read-only)."""

    list_display = ("pk", "event", "subscriber", "state", "attempts", "sent_at", "error")
    list_filter = ("state", "event__kind")
    list_select_related = ("event", "subscriber")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
