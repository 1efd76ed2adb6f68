from django.urls import path

from incidents import views

app_name = "incidents"

urlpatterns = [
    path("", views.incident_list, name="list"),
    path("declare/", views.incident_declare, name="declare"),
    path("<int:pk>/", views.incident_detail, name="detail"),
    path("<int:pk>/timeline/", views.incident_timeline, name="timeline"),
    path("<int:pk>/timeline/poll/", views.incident_timeline_poll, name="timeline_poll"),
    path("<int:pk>/timeline/<int:entry_id>/pin/", views.entry_pin, name="entry_pin"),
    path("<int:pk>/status/", views.incident_status, name="status"),
    path("<int:pk>/acknowledge/", views.incident_acknowledge, name="acknowledge"),
    path("<int:pk>/severity/", views.incident_severity, name="severity"),
    path("<int:pk>/milestones/", views.incident_milestone, name="milestone"),
    path("<int:pk>/details/", views.incident_details, name="details"),
    path("<int:pk>/roles/", views.role_assign, name="role_assign"),
    path("<int:pk>/roles/<int:assignment_id>/relieve/", views.role_relieve, name="role_relieve"),
    path("<int:pk>/tasks/", views.task_add, name="task_add"),
    path("<int:pk>/tasks/<int:task_id>/done/", views.task_done, name="task_done"),
    path("<int:pk>/tasks/<int:task_id>/owner/", views.task_owner, name="task_owner"),
    path("<int:pk>/updates/", views.stakeholder_update, name="update"),
    path("<int:pk>/notes/", views.note_add, name="note"),
    path("<int:pk>/restrict/", views.incident_restrict, name="restrict"),
    path("<int:pk>/share/", views.incident_share, name="share"),
    path("<int:pk>/page/", views.incident_page, name="page"),
    path(
        "<int:pk>/page/<int:escalation_id>/acknowledge/",
        views.incident_page_acknowledge,
        name="page_acknowledge",
    ),
    path("<int:pk>/share/<int:user_id>/remove/", views.incident_unshare, name="unshare"),
]

service_urlpatterns = [
    path("", views.service_list, name="service_list"),
    path("<slug:slug>/", views.service_detail, name="service_detail"),
]
