#!/usr/bin/env bash
# Start Firebreak for a person to use: migrate, load demo data, then the web server, a
# Celery worker and beat. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBUG="${DEBUG:-1}"
PORT="${PORT:-8000}"
export SITE_URL="${SITE_URL:-http://127.0.0.1:${PORT}}"  # links in emails
PY=.venv/bin/python

$PY manage.py migrate --noinput
if [ "${DEBUG}" = "1" ] || [ "${SEED_DEMO:-0}" = "1" ]; then
  $PY manage.py seed_demo --force
  $PY manage.py seed_demo_oncall
  $PY manage.py seed_demo_postmortems --force
  $PY manage.py seed_demo_status --force
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping Firebreak..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT

.venv/bin/celery -A config worker --beat --loglevel=INFO --concurrency=2 \
  --hostname "firebreak-dev@%h" &
pids+=($!)

if [ -n "${DATABASE_URL:-}" ] && [ "${DEBUG}" != "1" ]; then
  $PY manage.py collectstatic --noinput -v0
  .venv/bin/gunicorn config.wsgi --bind "127.0.0.1:${PORT}" --workers 2 &
else
  $PY manage.py runserver "127.0.0.1:${PORT}" --noreload &
fi
pids+=($!)

echo
echo "Firebreak is starting on http://127.0.0.1:${PORT}/  (sign in as ivy / firebreak-demo)"
echo "Press Ctrl-C to stop."
# Stop everything as soon as any one process exits.
wait -n "${pids[@]}"
