from django.urls import path

from oncall import views

app_name = "oncall"

urlpatterns = [
    path("ack/<str:token>/", views.page_acknowledge_link, name="ack"),
]
