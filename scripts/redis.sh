#!/usr/bin/env bash
# Redis for txbox's tests (the idempotency records of package inbox/redis): Debian's redis-server, our own
# instance in $TXBOX_STATE_DIR/redis on 127.0.0.1:$TXBOX_REDIS_PORT, never the system service.
# Usage: scripts/redis.sh install|start|stop|status|env
SERVICE=redis
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${TXBOX_REDIS_PORT:-56379}
DIR=$TXBOX_STATE_DIR/redis
PIDFILE=$DIR/redis.pid
ADDR=127.0.0.1:$PORT

ready() { [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; }

cmd_install() { apt_install redis-server redis-tools; }

cmd_start() {
	cmd_install
	mkdir -p "$DIR"
	if pid_alive "$PIDFILE" && ready; then
		log "already running on $ADDR"
		return 0
	fi
	log "starting on $ADDR"
	# No config file: nothing from /etc/redis leaks in. Loopback only, protected mode on (no password: nothing
	# but this machine reaches it). Snapshots are off: the tests' keys are throw-away and expire by themselves.
	redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --dir "$DIR" --daemonize yes \
		--pidfile "$PIDFILE" --logfile "$DIR/redis.log" --save '' --appendonly no \
		--maxmemory 512mb --maxmemory-policy noeviction ||
		die "redis-server did not start; see $DIR/redis.log"
	wait_until 30 "redis to answer PING" ready || die "redis not ready; see $DIR/redis.log"
	log "ready: $ADDR"
}

cmd_stop() { stop_pid "$PIDFILE" redis-server; }

cmd_status() { pid_alive "$PIDFILE" && ready && echo "redis: up on $ADDR" || { echo "redis: down"; return 1; }; }
cmd_env() { echo "export TXBOX_REDIS_ADDR='$ADDR'"; }

case "${1:-}" in
install | start | stop | status | env) "cmd_$1" ;;
*) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
