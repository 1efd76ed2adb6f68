from django.urls import path

from oncall import views

app_name = "oncall"

urlpatterns = [
    path("", views.oncall_home, name="home"),
    # Your own contact methods, rules and calendar feed (the profile page is /accounts/profile/).
    path("me/contact-methods/new/", views.contact_method_create, name="contact_method_create"),
    path(
        "me/contact-methods/<int:pk>/edit/", views.contact_method_edit, name="contact_method_edit"
    ),
    path(
        "me/contact-methods/<int:pk>/remove/",
        views.contact_method_delete,
        name="contact_method_delete",
    ),
    path(
        "me/contact-methods/<int:pk>/test/", views.contact_method_test, name="contact_method_test"
    ),
    path(
        "me/contact-methods/<int:pk>/secret/",
        views.contact_method_secret,
        name="contact_method_secret",
    ),
    path("me/rules/new/", views.rule_create, name="rule_create"),
    path("me/rules/<int:pk>/remove/", views.rule_delete, name="rule_delete"),
    path("me/calendar-feed/", views.user_feed_publish, name="user_feed_publish"),
    path("me/calendar-feed/revoke/", views.user_feed_revoke, name="user_feed_revoke"),
    # Schedules
    path("schedules/", views.schedule_list, name="schedule_list"),
    path("schedules/new/", views.schedule_create, name="schedule_create"),
    path("schedules/<slug:slug>/", views.schedule_detail, name="schedule_detail"),
    path("schedules/<slug:slug>/edit/", views.schedule_edit, name="schedule_edit"),
    path("schedules/<slug:slug>/layers/new/", views.layer_create, name="layer_create"),
    path("schedules/<slug:slug>/layers/<int:layer_id>/edit/", views.layer_edit, name="layer_edit"),
    path(
        "schedules/<slug:slug>/layers/<int:layer_id>/remove/",
        views.layer_delete,
        name="layer_delete",
    ),
    path("schedules/<slug:slug>/overrides/new/", views.override_create, name="override_create"),
    path(
        "schedules/<slug:slug>/overrides/<int:override_id>/remove/",
        views.override_delete,
        name="override_delete",
    ),
    path("schedules/<slug:slug>/take/", views.shift_take, name="shift_take"),
    path(
        "schedules/<slug:slug>/calendar-feed/",
        views.schedule_feed_publish,
        name="schedule_feed_publish",
    ),
    path(
        "schedules/<slug:slug>/calendar-feed/revoke/",
        views.schedule_feed_revoke,
        name="schedule_feed_revoke",
    ),
    # Secret calendar feeds: the token is the credential, no session needed.
    path("feeds/schedule/<str:token>.ics", views.schedule_feed, name="schedule_feed"),
    path("feeds/user/<str:token>.ics", views.user_feed, name="user_feed"),
    # Escalation policies
    path("policies/", views.policy_list, name="policy_list"),
    path("policies/new/", views.policy_create, name="policy_create"),
    path("policies/<int:pk>/", views.policy_detail, name="policy_detail"),
    path("policies/<int:pk>/edit/", views.policy_edit, name="policy_edit"),
    path("ack/<str:token>/", views.page_acknowledge_link, name="ack"),
]
