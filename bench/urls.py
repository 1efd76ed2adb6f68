"""The real URLs plus three bare views, the baselines the benchmarks compare against.

`bare` and `bare_login` pass through the full middleware stack. `bare_login` also requires
a login, exactly like the timeline poll (login_required + require_GET), so poll vs
bare_login isolates what the poll itself costs; `bare` is the anonymous floor.
`bare_insert`, alert ingestion's floor, is a machine endpoint like intake itself.
"""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from config.urls import urlpatterns as app_urlpatterns
from incidents.alerting.middleware import machine_endpoint


@require_GET
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@login_required
@require_GET
def bare_login(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@machine_endpoint
@csrf_exempt
@require_POST
def bare_insert(request: HttpRequest) -> HttpResponse:
    """The alert-ingestion baseline: one INSERT of the body, no parsing, no dedup. A
    machine endpoint like intake (bench.settings lists its prefix), so both skip the same
    middleware and the ratio compares intake's own work with the INSERT."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare_insert (body) VALUES (%s)", [request.body.decode()])
    return HttpResponse("ok", status=202)


urlpatterns = [
    *app_urlpatterns,
    path("bench/bare/", bare, name="bench_bare"),
    path("bench/bare-login/", bare_login, name="bench_bare_login"),
    path("bench/bare-insert/", bare_insert, name="bench_bare_insert"),
]
