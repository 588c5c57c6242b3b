#!/usr/bin/env bash
# The topology of docker-compose.yaml without Docker, on this machine: PostgreSQL and Redis (already
# running; it says how to start them if not), `airflow db migrate`, Baton's store migrations, the
# api-server, scheduler, dag-processor, triggerer and two Celery workers (CeleryExecutor), each in its
# own process group. Ctrl-C stops every one of them. Options: --workers N --concurrency N (see --help).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$BATON_ROOT/scripts/install.sh"
cd "$BATON_ROOT"
exec python -m devtools.topology "$@"
