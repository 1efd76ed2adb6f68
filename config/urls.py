from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.health import healthz
from incidents import views as incident_views
from incidents.alerting.urls import alert_urlpatterns, intake_urlpatterns
from incidents.urls import service_urlpatterns
from oncall import views as oncall_views

urlpatterns = [
    path("", incident_views.home, name="home"),
    path("incidents/", include("incidents.urls")),
    path("services/", include((service_urlpatterns, "services"))),
    path("alerts/", include((alert_urlpatterns, "alerts"))),
    path("integrations/", include((intake_urlpatterns, "integrations"))),
    path("postmortems/", include("postmortems.urls")),
    path("status/", include(("incidents.statuspages.urls", "status"))),
    path("oncall/", include("oncall.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", oncall_views.profile, name="profile"),
    path("teams/", oncall_views.team_list, name="team_list"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
