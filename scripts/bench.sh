#!/usr/bin/env bash
# The benchmarks in bench/, then a summary table. Each prints its figures beside a baseline
# measured in the same run; none of them is a test and none fails on a slow figure.
#
#   ./scripts/bench.sh            # all (about 1.5 minutes)
#   ./scripts/bench.sh page       # incident page only
#   ./scripts/bench.sh poll       # idle timeline poll only
#   ./scripts/bench.sh memory     # idle web process and Celery worker memory
#   ./scripts/bench.sh pdf        # postmortem PDF, 200 timeline entries, 30 action items
#   ./scripts/bench.sh items      # action-item dashboard, 50 vs 5,000 items
#   ./scripts/bench.sh paging     # incident declared -> webhook received, 200 incidents
#
# Needs PostgreSQL and Redis on 127.0.0.1. Uses its own database and Redis db, created or
# reused as needed: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
# firebreak_bench) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/5).
# The poll benchmark uses wrk when installed (apt-get install wrk), else a Python client.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
export BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/firebreak_bench}"
export BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p var/bench

which=("$@")
[ ${#which[@]} -eq 0 ] && which=(page poll memory pdf items schedules paging status alerts)

# Create the bench database if it is missing, and bring its schema up to date.
$PY -c "from bench.common import setup_django; setup_django()"

if ! command -v wrk >/dev/null 2>&1; then
  echo "note: wrk is not installed; the poll benchmark uses its asyncio client, which takes"
  echo "      CPU from the server it measures (apt-get install wrk for the cheaper client)."
fi

started=$SECONDS
for name in "${which[@]}"; do
  case "$name" in
    page) module=bench.incident_page ;;
    poll) module=bench.timeline_poll ;;
    memory) module=bench.memory ;;
    pdf) module=bench.postmortem_pdf ;;
    items) module=bench.action_items ;;
    paging) module=bench.paging ;;
    status) module=bench.status_page ;;  # status page, JSON summary, badge vs a static file
    schedules) module=bench.schedules ;;
    alerts) module=bench.alert_ingest ;;  # alert ingestion and the dedup storm vs a bare INSERT
    *) echo "unknown benchmark: $name (page, poll, memory, pdf, items, paging)" >&2; exit 2 ;;
  esac
  echo
  echo "=== $module ==="
  $PY -m "$module" 2>&1 | tee "var/bench/$name.log"
done

echo
$PY -m bench.summary
echo "(all figures in var/bench/; took $((SECONDS - started)) s)"
