#!/usr/bin/env bash
# MariaDB for txbox's tests: our own server in $TXBOX_STATE_DIR/mariadb, on 127.0.0.1:$TXBOX_MYSQL_PORT.
# Usage: scripts/mariadb.sh install|start|stop|status|env
# TXBOX_MYSQL_DURABLE=1 flushes the redo log at every commit (fault runs); the default trades durability for speed.
SERVICE=mariadb
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${TXBOX_MYSQL_PORT:-53306}
DIR=$TXBOX_STATE_DIR/mariadb
DATA=$DIR/data
SOCK=$DIR/mysqld.sock
PIDFILE=$DIR/mariadbd.pid
DSN="txbox:txbox@tcp(127.0.0.1:$PORT)/txbox"

# Root gets in through our own socket only (unix_socket auth, as Debian sets it up); tests use the txbox user over TCP.
as_root() { mariadb --no-defaults --protocol=socket --socket="$SOCK" -uroot "$@"; }
ready() { mariadb-admin --no-defaults --protocol=socket --socket="$SOCK" -uroot ping; }

cmd_install() { apt_install mariadb-server mariadb-client; }

cmd_start() {
	cmd_install
	mkdir -p "$DIR"
	chown mysql:mysql "$DIR"
	if pid_alive "$PIDFILE" && ready >/dev/null 2>&1; then
		log "already running on 127.0.0.1:$PORT"
		return 0
	fi
	if [[ ! -d $DATA/mysql ]]; then
		log "mariadb-install-db in $DATA"
		mariadb-install-db --no-defaults --user=mysql --datadir="$DATA" --auth-root-authentication-method=socket \
			>"$DIR/install-db.log" 2>&1 || die "mariadb-install-db failed; see $DIR/install-db.log"
	fi
	log "starting on 127.0.0.1:$PORT"
	# --no-defaults: ignore /etc/mysql so a system server's settings (port 3306, /run/mysqld) never leak in.
	# Durability is relaxed for test speed (flush at commit off; benchmarks say so) unless TXBOX_MYSQL_DURABLE=1.
	local FLUSH_AT_COMMIT=2
	[[ ${TXBOX_MYSQL_DURABLE:-} == 1 ]] && FLUSH_AT_COMMIT=1
	setsid mariadbd --no-defaults --user=mysql --datadir="$DATA" --socket="$SOCK" --pid-file="$PIDFILE" \
		--port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DIR/mariadbd.err" \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --max-connections=500 \
		--innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit="$FLUSH_AT_COMMIT" --innodb-log-file-size=256M \
		--sql-mode=STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION \
		</dev/null >>"$DIR/mariadbd.out" 2>&1 &
	echo $! >"$PIDFILE.launcher"
	wait_until 90 "mariadbd to accept connections" ready || die "mariadbd not ready; see $DIR/mariadbd.err"
	as_root <<'SQL'
CREATE DATABASE IF NOT EXISTS txbox;
CREATE USER IF NOT EXISTS 'txbox'@'127.0.0.1' IDENTIFIED BY 'txbox';
CREATE USER IF NOT EXISTS 'txbox'@'localhost' IDENTIFIED BY 'txbox';
-- Tests create one database per test (txbox_t_*) to isolate their data.
GRANT ALL PRIVILEGES ON *.* TO 'txbox'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'txbox'@'localhost';
SQL
	log "ready: $DSN"
}

cmd_stop() {
	rm -f "$PIDFILE.launcher"
	stop_pid "$PIDFILE" mariadbd
}

cmd_status() { pid_alive "$PIDFILE" && ready >/dev/null 2>&1 && echo "mariadb: up on 127.0.0.1:$PORT" || { echo "mariadb: down"; return 1; }; }
cmd_env() { echo "export TXBOX_MYSQL_DSN='$DSN'"; }

case "${1:-}" in
install | start | stop | status | env) "cmd_$1" ;;
*) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
