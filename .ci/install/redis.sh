#!/usr/bin/env bash
# The Redis store's tests start their own redis-server (Redis 7, Debian's
# package); under CI=true a missing binary fails them. Idempotent and quiet.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
# Debian's package starts a system service on 6379; the tests use their own
# servers on free ports and need none.
redis-server --version
