#!/usr/bin/env bash
# Run (or resume) one sweep; the scheduling primitive is the same command again: a finished
# sweep is a no-op that says so, an interrupted one resumes.
#   deploy/cron/run-sweep.sh [SPEC] [fmnist-sweep run options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
spec="${1:-search_spaces/minivgg.yaml}"
shift || true
exec .venv/bin/fmnist-sweep run "$spec" "$@"
