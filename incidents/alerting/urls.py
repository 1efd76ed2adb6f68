from django.urls import path

from incidents.alerting import intake, views

# Mounted at /integrations/ with namespace "integrations"; the token is the credential.
intake_urlpatterns = [
    path("pagerduty/enqueue", intake.pagerduty_enqueue, name="pagerduty_enqueue"),
    path("<str:token>/alertmanager", intake.alertmanager_webhook, name="alertmanager"),
    path("<str:token>/pagerduty", intake.pagerduty_events, name="pagerduty"),
    path("<str:token>/generic", intake.generic_webhook, name="generic"),
]

# Mounted at /alerts/ with namespace "alerts".
alert_urlpatterns = [
    path("", views.alert_list, name="list"),
    path("services/<slug:slug>/integrations/", views.integration_add, name="integration_add"),
    path(
        "services/<slug:slug>/integrations/<int:integration_id>/rotate/",
        views.integration_rotate_view,
        name="integration_rotate",
    ),
]
