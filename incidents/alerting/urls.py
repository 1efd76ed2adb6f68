from django.urls import path

from incidents.alerting import views

# Mounted at /integrations/ with namespace "integrations"; the token is the credential.
intake_urlpatterns = [
    path("pagerduty/enqueue", views.pagerduty_enqueue, name="pagerduty_enqueue"),
    path("<str:token>/alertmanager", views.alertmanager_webhook, name="alertmanager"),
    path("<str:token>/pagerduty", views.pagerduty_events, name="pagerduty"),
    path("<str:token>/generic", views.generic_webhook, name="generic"),
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
