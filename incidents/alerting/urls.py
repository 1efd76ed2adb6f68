from django.urls import path

from incidents.alerting import intake, rule_views, views

# Mounted at /integrations/ with namespace "integrations"; the token is the credential.
intake_urlpatterns = [
    path("pagerduty/enqueue", intake.pagerduty_enqueue, name="pagerduty_enqueue"),
    path("<str:token>/alertmanager", intake.alertmanager_webhook, name="alertmanager"),
    path("<str:token>/pagerduty", intake.pagerduty_events, name="pagerduty"),
    path("<str:token>/generic", intake.generic_webhook, name="generic"),
    path("<str:token>/heartbeat", views.heartbeat_ping, name="heartbeat"),
]

# Mounted at /alerts/ with namespace "alerts".
alert_urlpatterns = [
    path("", views.alert_list, name="list"),
    path("bulk/", views.alert_bulk, name="bulk"),
    path("<int:alert_id>/", views.alert_detail, name="detail"),
    path("<int:alert_id>/declare/", views.alert_declare, name="declare"),
    path("services/<slug:slug>/integrations/", views.integration_add, name="integration_add"),
    path(
        "services/<slug:slug>/integrations/<int:integration_id>/rotate/",
        views.integration_rotate_view,
        name="integration_rotate",
    ),
    # Routing rules and maintenance windows; the rule or window id travels in the form.
    path("services/<slug:slug>/rules/", rule_views.rule_form, name="rules"),
    path("services/<slug:slug>/rules/delete/", rule_views.rule_delete, name="rule_delete"),
    path("services/<slug:slug>/rules/move/", rule_views.rule_move, name="rule_move"),
    path("services/<slug:slug>/maintenance/", rule_views.maintenance_form, name="maintenance"),
    path(
        "services/<slug:slug>/maintenance/cancel/",
        rule_views.maintenance_cancel,
        name="maintenance_cancel",
    ),
    path("services/<slug:slug>/heartbeats/", views.heartbeat_add, name="heartbeat_add"),
    path(
        "services/<slug:slug>/heartbeats/<int:heartbeat_id>/pause/",
        views.heartbeat_pause_view,
        name="heartbeat_pause",
    ),
    path(
        "services/<slug:slug>/heartbeats/<int:heartbeat_id>/delete/",
        views.heartbeat_delete_view,
        name="heartbeat_delete",
    ),
]
