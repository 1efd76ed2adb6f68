#!/usr/bin/env bash
# The whole test suite. Uses PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set,
# SQLite and a filesystem broker otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf var/test
exec .venv/bin/python -m pytest "$@"
