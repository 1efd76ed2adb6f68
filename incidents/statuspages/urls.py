"""Mounted at /status/ with namespace "status"."""

from django.urls import path

from incidents.statuspages import views

urlpatterns = [
    path("", views.status_index, name="index"),
    path("manage/", views.status_manage, name="manage"),
    path("incidents/<int:pk>/publish/", views.incident_status_compose, name="incident_compose"),
    path(
        "incidents/<int:pk>/publish/send/",
        views.incident_status_publish,
        name="incident_publish",
    ),
    path(
        "incidents/<int:pk>/components/",
        views.incident_component_statuses,
        name="incident_components",
    ),
    path("<slug:slug>/", views.status_page, name="page"),
    path("<slug:slug>/history/", views.status_history, name="history"),
    path("<slug:slug>/summary.json", views.status_summary, name="summary"),
    path("<slug:slug>/badge.svg", views.status_badge, name="badge"),
    path("<slug:slug>/feed.atom", views.status_feed, name="feed"),
]

# Subscribers and scheduled maintenance (subscriber_views.py).
from incidents.statuspages import subscriber_views  # noqa: E402

urlpatterns += [
    path("<slug:slug>/subscribe/", subscriber_views.subscribe, name="subscribe"),
    path(
        "subscriptions/<int:pk>/confirm/<str:token>/",
        subscriber_views.subscription_confirm,
        name="subscription_confirm",
    ),
    path(
        "subscriptions/<int:pk>/unsubscribe/<str:token>/",
        subscriber_views.unsubscribe,
        name="unsubscribe",
    ),
    path(
        "<slug:slug>/maintenance/", subscriber_views.maintenance_manage, name="maintenance_manage"
    ),
    path(
        "<slug:slug>/maintenance/<int:pk>/cancel/",
        subscriber_views.maintenance_cancel,
        name="maintenance_cancel",
    ),
    path("<slug:slug>/webhooks/", subscriber_views.webhooks_manage, name="webhooks_manage"),
    path(
        "<slug:slug>/webhooks/<int:pk>/remove/",
        subscriber_views.webhook_remove,
        name="webhook_remove",
    ),
]
