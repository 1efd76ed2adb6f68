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
