"""The real URLs plus two bare views, the baselines the benchmarks compare against.

Both pass through the full middleware stack. `bare_login` also requires a login, exactly
like the timeline poll (login_required + require_GET), so poll vs bare_login isolates what
the poll itself costs; `bare` is the anonymous floor.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from config.urls import urlpatterns as app_urlpatterns


@require_GET
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@login_required
@require_GET
def bare_login(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    *app_urlpatterns,
    path("bench/bare/", bare, name="bench_bare"),
    path("bench/bare-login/", bare_login, name="bench_bare_login"),
]
