from django.urls import path

from postmortems import views

app_name = "postmortems"

urlpatterns = [
    path("", views.postmortem_list, name="list"),
    path("incident/<int:incident_pk>/create/", views.postmortem_create, name="create"),
    path("incident/<int:incident_pk>/panel/", views.incident_panel, name="incident_panel"),
    path(
        "incident/<int:incident_pk>/action-items/",
        views.incident_action_item_create,
        name="incident_action_item_create",
    ),
    path("<int:pk>/", views.postmortem_detail, name="detail"),
    path("<int:pk>/details/", views.postmortem_details, name="details"),
    path("<int:pk>/preview/", views.markdown_preview, name="preview"),
    path("<int:pk>/sections/<slug:key>/", views.section_show, name="section"),
    path("<int:pk>/sections/<slug:key>/edit/", views.section_edit, name="section_edit"),
    path("<int:pk>/sections/<slug:key>/save/", views.section_save, name="section_save"),
    path(
        "<int:pk>/sections/<slug:key>/revisions/",
        views.section_revisions,
        name="section_revisions",
    ),
    path("<int:pk>/timeline/", views.timeline_choose, name="timeline_choose"),
    path("<int:pk>/timeline/add/", views.timeline_add, name="timeline_add"),
    path("<int:pk>/timeline/<int:item_id>/remove/", views.timeline_remove, name="timeline_remove"),
    path("<int:pk>/submit/", views.postmortem_submit, name="submit"),
    path("<int:pk>/approve/", views.postmortem_approve, name="approve"),
    path("<int:pk>/publish/", views.postmortem_publish, name="publish"),
    path("<int:pk>/revise/", views.postmortem_revise, name="revise"),
    path("<int:pk>/comments/", views.comment_add, name="comment_add"),
    path(
        "<int:pk>/comments/<int:comment_id>/resolve/",
        views.comment_resolve,
        name="comment_resolve",
    ),
    path("<int:pk>/action-items/", views.postmortem_action_item_create, name="action_item_create"),
    path("<int:pk>/export/", views.export_request, name="export"),
    path("<int:pk>/export/status/", views.export_status, name="export_status"),
    path("<int:pk>/export/download/", views.export_download, name="export_download"),
    path(
        "<int:pk>/export/<int:export_id>/download/",
        views.export_download_earlier,
        name="export_download_earlier",
    ),
    path("action-items/", views.action_item_list, name="action_items"),
    path("action-items/mine/", views.my_action_items, name="my_action_items"),
    path("action-items/export.csv", views.action_items_csv, name="action_items_csv"),
    path("action-items/<int:item_id>/", views.action_item_detail, name="action_item_detail"),
    path("action-items/<int:item_id>/status/", views.action_item_status, name="action_item_status"),
]
