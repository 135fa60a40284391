#!/usr/bin/env bash
# otpflow-postgres tests start their own PostgreSQL 15 from
# /usr/lib/postgresql/15/bin (as the `postgres` user, through runuser and
# setpriv). The machines ship it; install it only where it is missing.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
if [ ! -x "$bin/postgres" ] || [ ! -x "$bin/initdb" ] || ! id postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  # No cluster of the package's own: the tests make theirs.
  mkdir -p /etc/postgresql-common
  [ -e /etc/postgresql-common/createcluster.conf ] ||
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql-15 >/dev/null
fi
for tool in runuser setpriv; do
  command -v "$tool" >/dev/null || { echo "$tool (util-linux) is needed by the PostgreSQL tests" >&2; exit 1; }
done
"$bin/postgres" --version
