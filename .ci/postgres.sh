#!/usr/bin/env bash
# Start a throwaway PostgreSQL server from the distribution's package and print the URL of a role that
# may create databases (tests/postgres creates one database per test). Used by .ci/run; by hand:
#   eval "$(bash .ci/postgres.sh start)"   # exports HWTUNE_TEST_POSTGRES_URL
#   bash .ci/postgres.sh stop
set -euo pipefail
PORT="${HWTUNE_PG_PORT:-5432}"
ROLE=hwtune
PASS="${HWTUNE_PG_PASSWORD:-hwtune-ci}"  # a throwaway local test server (Debian binds it to localhost); fixed, so that two runs never change it under each other

as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
need_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

case "${1:-start}" in
start)
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "installing PostgreSQL from the distribution's package" >&2
    need_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq postgresql >&2
  fi
  VER="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$VER main$"; then
    need_root pg_createcluster "$VER" main -p "$PORT" >&2
  fi
  need_root pg_ctlcluster "$VER" main start >&2 || true   # already running is fine
  for _ in $(seq 1 30); do as_postgres "pg_isready -q -p $PORT" && break; sleep 1; done
  as_postgres "pg_isready -p $PORT" >&2
  as_postgres "psql -q -v ON_ERROR_STOP=1 -p $PORT" >&2 <<SQL
DO \$do\$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS';
  ELSE CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS'; END IF;
END \$do\$;
SQL
  echo "export HWTUNE_TEST_POSTGRES_URL=postgresql://$ROLE:$PASS@127.0.0.1:$PORT/postgres"
  ;;
stop)
  VER="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  need_root pg_ctlcluster "$VER" main stop >&2 || true
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
