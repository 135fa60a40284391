#!/usr/bin/env bash
# otpflow-server's black-box tests start a real redis-server and a private
# PostgreSQL 15 (as the `postgres` user) on free loopback ports; under
# CI=true a missing server fails them. The Redis and PostgreSQL areas'
# scripts install both; this one only runs them where a server is missing
# (they are idempotent). The webhook tests need nothing more (their
# receiver is in the test).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null 2>&1 || bash .ci/install/redis.sh
[ -x /usr/lib/postgresql/15/bin/postgres ] && id postgres >/dev/null 2>&1 || bash .ci/install/postgres.sh
command -v setpriv >/dev/null || { echo "setpriv (util-linux) is needed by the PostgreSQL test" >&2; exit 1; }
