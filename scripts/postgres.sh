#!/usr/bin/env bash
# PostgreSQL for txbox's tests: our own cluster in $TXBOX_STATE_DIR/postgres, on 127.0.0.1:$TXBOX_PG_PORT.
# Usage: scripts/postgres.sh install|start|stop|status|env
# TXBOX_PG_DURABLE=1 creates the cluster with fsync and synchronous_commit on (fault runs); the default trades
# durability for speed.
SERVICE=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${TXBOX_PG_PORT:-55432}
DIR=$TXBOX_STATE_DIR/postgres
DATA=$DIR/data
DSN="postgres://txbox:txbox@127.0.0.1:$PORT/txbox?sslmode=disable"

bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[[ -n $d ]] || die "no PostgreSQL server found under /usr/lib/postgresql (run: $0 install)"
	echo "$d"
}

as_pg() { runuser -u postgres -- "$@"; }

ready() { "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres; }

cmd_install() { apt_install postgresql postgresql-contrib; }

cmd_start() {
	cmd_install
	local bin; bin=$(bindir)
	mkdir -p "$DIR"
	chown postgres:postgres "$DIR"
	if [[ -f $DATA/postmaster.pid ]] && ready; then
		log "already running on 127.0.0.1:$PORT"
		return 0
	fi
	if [[ ! -s $DATA/PG_VERSION ]]; then
		log "initdb in $DATA"
		as_pg "$bin/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
			die "initdb failed; see $DIR/initdb.log"
		cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 400
shared_buffers = 256MB
CONF
		if [[ ${TXBOX_PG_DURABLE:-} == 1 ]]; then
			# Fault runs (cmd/txbox-faults): what a production server does, so a SIGKILL loses nothing committed.
			printf '%s\n' "fsync = on" "synchronous_commit = on" "full_page_writes = on" >>"$DATA/postgresql.conf"
		else
			# Test instance: durability traded for speed. Benchmarks say so when they print their figures.
			printf '%s\n' "fsync = off" "synchronous_commit = off" "full_page_writes = off" >>"$DATA/postgresql.conf"
		fi
		# Only loopback, password-checked for the test role; the socket stays trust for the postgres superuser.
		cat >"$DATA/pg_hba.conf" <<HBA
local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
HBA
	fi
	log "starting on 127.0.0.1:$PORT"
	# Retried for a while: after a crash (or a kill) the old server's processes can take a moment to exit, and
	# until they have, PostgreSQL refuses to start on the data directory they still hold.
	wait_until 60 "pg_ctl start" as_pg "$bin/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 start ||
		die "pg_ctl start failed; see $DIR/postgres.log"
	wait_until 60 "postgres to accept connections" ready || die "postgres not ready; see $DIR/postgres.log"
	as_pg "$bin/psql" -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'txbox') THEN
    CREATE ROLE txbox LOGIN PASSWORD 'txbox' CREATEDB;
  END IF;
END \$\$;
SELECT 'CREATE DATABASE txbox OWNER txbox' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'txbox')\gexec
SQL
	log "ready: $DSN"
}

cmd_stop() {
	if [[ -f $DATA/postmaster.pid ]]; then
		log "stopping"
		as_pg "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || true
	else
		log "not running"
	fi
}

cmd_status() { ready && echo "postgres: up on 127.0.0.1:$PORT" || { echo "postgres: down"; return 1; }; }
cmd_env() { echo "export TXBOX_POSTGRES_DSN='$DSN'"; }

case "${1:-}" in
install | start | stop | status | env) "cmd_$1" ;;
*) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
