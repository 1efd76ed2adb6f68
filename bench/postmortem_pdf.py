"""Postmortem PDF: render time for 200 timeline entries and 30 action items, and per page.

    .venv/bin/python -m bench.postmortem_pdf [--runs 5] [--entries 200] [--items 30]

PostgreSQL (bench/settings.py). The incident is built through incidents.services, the
postmortem through postmortems.services; every one of the incident's entries is chosen for
the postmortem timeline and every section is written. Timed: the Celery task's work
(claim, query, template, WeasyPrint layout and PDF, store), in-process, plus peak RSS of
this process. Baseline in the same run: WeasyPrint alone on a plain 1-page document.

Target (shared/docs/targets.md): <= 2 s for ~20 pages, worker memory < 400 MB.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.common import build_incident, median, setup_django, write_result

TARGET_S = 2.0
PARAGRAPH = (
    "The connection pool on **payments-gateway** saturated when retries from checkout "
    "multiplied the load. Nothing in the system bounded retry concurrency, and the pool "
    "size had not changed since the service handled a third of today's traffic."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--items", type=int, default=30)
    args = parser.parse_args()
    setup_django()

    from weasyprint import HTML

    from bench.common import bench_users, delete_previous_bench_incidents
    from incidents import services as incident_services
    from postmortems import services
    from postmortems.models import PostmortemExport
    from postmortems.tasks import postmortem_export_render

    delete_previous_bench_incidents("Postmortem PDF")
    responders, _ = bench_users()
    ic = responders[0]
    started = time.perf_counter()
    incident = build_incident(title="Postmortem PDF", entries=args.entries, tasks=5, pins=20)
    if incident.status != "monitoring":
        incident_services.incident_transition(incident=incident, actor=ic, to_status="monitoring")
    incident_services.incident_transition(incident=incident, actor=ic, to_status="resolved")
    postmortem = services.postmortem_create(incident=incident, actor=ic)
    services.postmortem_timeline_choose(
        postmortem=postmortem,
        actor=ic,
        entry_ids=list(incident.timeline.values_list("pk", flat=True)),
    )
    for section in postmortem.sections.exclude(key="timeline"):
        services.postmortem_section_save(
            postmortem=postmortem, section_key=section.key, actor=ic,
            body="\n\n".join([PARAGRAPH] * 3), base_version=section.version,
        )  # fmt: skip
    for n in range(args.items):
        services.action_item_create(
            incident=incident, actor=ic, title=f"Follow-up {n + 1}: bound retry concurrency",
            item_type=("detective", "preventive", "corrective")[n % 3],
            owner=responders[n % len(responders)], priority=n % 4 + 1,
        )  # fmt: skip
    services.postmortem_submit_for_review(
        postmortem=postmortem, actor=ic, reviewers=responders[1:3]
    )
    for reviewer in responders[1:3]:  # publishing needs every reviewer's approval
        services.postmortem_approve(postmortem=postmortem, actor=reviewer)
    services.postmortem_publish(postmortem=postmortem, actor=ic)
    postmortem.refresh_from_db()
    print(f"built the postmortem in {time.perf_counter() - started:.1f} s: "
          f"{postmortem.timeline_items.count()} timeline entries, "
          f"{postmortem.incident.action_items.count()} action items")  # fmt: skip

    baseline = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        HTML(string="<p>Hello</p>").write_pdf()
        baseline.append(time.perf_counter() - t0)

    timings, pages, size = [], 0, 0
    for run in range(args.runs + 1):
        PostmortemExport.objects.filter(postmortem=postmortem).delete()
        export = services.postmortem_export_request(postmortem=postmortem, actor=ic)
        t0 = time.perf_counter()
        assert postmortem_export_render(export.pk) == "ready"
        elapsed = time.perf_counter() - t0
        export.refresh_from_db()
        pages, size = export.pages, export.size
        if run:  # the first run warms fonts and templates
            timings.append(elapsed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = median(timings)
    print(f"\nbaseline: WeasyPrint, 1-page document   median {median(baseline) * 1000:7.1f} ms")
    print(f"postmortem PDF, {pages} pages, {size / 1024:.0f} KiB  median {med * 1000:7.1f} ms, "
          f"min {min(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms")  # fmt: skip
    print(f"per page: {med / pages * 1000:.1f} ms; peak RSS of this process {peak_mb:.0f} MB")
    print(f"target <= {TARGET_S} s for ~20 pages: {'MET' if med <= TARGET_S else 'MISSED'}")
    write_result(
        "postmortem_pdf",
        {
            "pages": pages,
            "size_bytes": size,
            "median_s": med,
            "per_page_ms": med / pages * 1000,
            "baseline_one_page_ms": median(baseline) * 1000,
            "peak_rss_mb": peak_mb,
            "runs": timings,
            "target_met": med <= TARGET_S,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
