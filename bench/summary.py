"""Summary table of the last bench run, from var/bench/*.json (written by each benchmark)."""

from __future__ import annotations

import json
import os
import sys

from bench.common import RESULTS_DIR


def _load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> int:
    rows: list[tuple[str, str, str, str, str]] = []
    page = _load("incident_page")
    if page:
        labels = list(page["rows"])
        bare, small, big = (page["rows"][k] for k in labels)
        n_small, n_big = page["entries"]["small"], page["entries"]["big"]
        rows.append(
            (
                "incident page: queries",
                f"{small['queries']} ({n_small} entries) -> {big['queries']} ({n_big:,})",
                f"bare login view {bare['queries']}",
                "constant, <= 20",
                "MET" if page["query_target_met"] else "MISSED",
            )
        )
        rows.append(
            (
                f"incident page: render, {n_big:,} entries",
                f"median {big['median_ms']:.1f} ms, p95 {big['p95_ms']:.1f} ms",
                f"{n_small} entries: median {small['median_ms']:.1f} ms, p95 "
                f"{small['p95_ms']:.1f} ms",
                "< 150 ms",
                "MET" if page["render_target_met"] else "MISSED",
            )
        )
    poll = _load("timeline_poll")
    if poll:
        http = poll["http"]
        p, login, anon = (
            http["idle poll (204)"],
            http["bare login_required view"],
            http["bare anonymous view"],
        )
        rows.append(
            (
                "idle timeline poll: req/s",
                f"{p['rps']:.0f} req/s, p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.0f} ms",
                f"bare login {login['rps']:.0f} req/s -> {poll['ratio_vs_bare_login']:.0%}; "
                f"bare anon {anon['rps']:.0f} -> {poll['ratio_vs_bare_anonymous']:.0%}",
                ">= 50% of bare",
                f"{'MET' if poll['target_met_vs_bare_login'] else 'MISSED'} vs login, "
                f"{'MET' if poll['target_met_vs_bare_anonymous'] else 'MISSED'} vs anon",
            )
        )
        cost = poll["server_cpu_ms_per_request"]
        rows.append(
            (
                "idle timeline poll: server CPU/req",
                f"{cost['idle poll (204)']:.2f} ms",
                f"bare login {cost['bare login_required view']:.2f} ms -> "
                f"{poll['cpu_capacity_ratio_vs_bare_login']:.0%}; bare anon "
                f"{cost['bare anonymous view']:.2f} ms -> "
                f"{poll['cpu_capacity_ratio_vs_bare_anonymous']:.0%}",
                ">= 50% of bare",
                "(capacity if alone on the machine)",
            )
        )
    pdf = _load("postmortem_pdf")
    if pdf:
        rows.append(
            (
                f"postmortem PDF: {pdf['pages']} pages",
                f"median {pdf['median_s'] * 1000:.0f} ms, {pdf['per_page_ms']:.0f} ms/page, "
                f"peak RSS {pdf['peak_rss_mb']:.0f} MB",
                f"WeasyPrint 1-page doc {pdf['baseline_one_page_ms']:.0f} ms",
                "<= 2 s, < 400 MB",
                "MET" if pdf["target_met"] else "MISSED",
            )
        )
    items = _load("action_items")
    if items:
        small, big = items["rows"]["small"], items["rows"]["big"]
        bare_ms = items["rows"]["bare"]["median_ms"]
        rows.append(
            (
                "action-item dashboard",
                f"{small['queries']} queries (50) -> {big['queries']} ({items['items']['big']:,});"
                f" median {big['median_ms']:.0f} ms",
                f"50 items {small['median_ms']:.0f} ms; bare view {bare_ms:.1f} ms",
                "constant, < 200 ms",
                "MET" if items["query_target_met"] and items["render_target_met"] else "MISSED",
            )
        )
    status = _load("status_page")
    if status:
        static = status["http"]["static file (baseline)"]
        for label in ("status page", "JSON summary"):
            r = status["http"][label]
            rows.append(
                (
                    f"{label}: {status['connections']} clients",
                    f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.0f} ms",
                    f"static file {static['rps']:.0f} req/s -> {r['rps'] / static['rps']:.0%}",
                    ">= 1000/s, p99 < 200 ms, >= 50%",
                    "MET" if status["target_met"][label] else "MISSED",
                )
            )
    alerts = _load("alert_ingest")
    if alerts:
        bare, ingest, storm = alerts["bare_insert"], alerts["ingestion"], alerts["storm"]
        ratio = alerts["ingestion_vs_bare"] or 0
        rows.append(
            (
                "alert ingestion: 32 senders",
                f"{ingest['rps']:.0f} alerts/s, p50 {ingest['p50_ms']:.0f} ms, "
                f"p99 {ingest['p99_ms']:.0f} ms",
                f"bare INSERT {bare['rps']:.0f} req/s -> {ratio:.0%}",
                ">= 200/s, p99 < 100 ms, >= 50%",
                "MET"
                if ingest["rps"] >= 200 and ingest["p99_ms"] < 100 and ratio >= 0.5
                else "MISSED",
            )
        )
        am = alerts.get("alertmanager")
        if am:
            rows.append(
                (
                    "  Alertmanager notifications",
                    f"{am['rps']:.0f} alerts/s, p50 {am['p50_ms']:.0f} ms, "
                    f"p99 {am['p99_ms']:.0f} ms",
                    f"bare INSERT -> {am['vs_bare']:.0%}",
                    ">= 200/s, p99 < 100 ms, >= 50%",
                    "MET"
                    if am["rps"] >= 200 and am["p99_ms"] < 100 and am["vs_bare"] >= 0.5
                    else "MISSED",
                )
            )
        rows.append(
            (
                "dedup storm: one key",
                f"{storm['rps']:.0f} events/s; {storm['alerts']} alert, "
                f"{storm['incidents']} incident",
                "",
                ">= 1000/s, exactly 1 and 1",
                "MET"
                if storm["rps"] >= 1000 and storm["alerts"] == 1 and storm["incidents"] == 1
                else "MISSED",
            )
        )
    if not rows:
        print("no results in", RESULTS_DIR)
        return 1
    header = ("benchmark", "figure", "baseline, same run", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(
        f"Firebreak bench summary ({os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} now)"
    )
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r).rstrip())
    stamps = [
        f"{name}.json {d['written_at']}"
        for name, d in [
            ("incident_page", page),
            ("timeline_poll", poll),
            ("postmortem_pdf", pdf),
            ("action_items", items),
            ("status_page", status),
            ("alert_ingest", alerts),
        ]
        if d
    ]
    print("from " + "; ".join(stamps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
