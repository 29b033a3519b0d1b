#!/usr/bin/env bash
# RocketMQ 5.3 for txbox's tests: a name server on 127.0.0.1:$TXBOX_ROCKETMQ_NAMESRV_PORT and one broker (broker-a,
# cluster DefaultCluster) on 127.0.0.1:$TXBOX_ROCKETMQ_BROKER_PORT, run from Maven Central jars on the system JDK
# (17+); no Docker, no download but Maven Central. State in $TXBOX_STATE_DIR/rocketmq: lib/ (jars), conf/, store/,
# home/ (user.home and rocketmq.home.dir), logs/ (stdout and the RocketMQ logs), bin/mqadmin, *.pid.
#
# Usage: scripts/rocketmq.sh install|start|stop|status|env
#        scripts/rocketmq.sh admin SUBCOMMAND ARGS...   MQAdminStartup (mqadmin); -n defaults to our name server
#        scripts/rocketmq.sh topic NAME [QUEUES]        create/update a topic (4 read/4 write queues) on every broker of
#                                                       the cluster, wait until its route shows them all
#        scripts/rocketmq.sh broker-start NAME PORT     start another broker of the cluster (broker-b, ...) on PORT
#        scripts/rocketmq.sh broker-stop NAME           stop it
#
# Another broker (for tests that lose one) registers with the running name server under its own brokerName, in
# the same cluster, with its own store, user.home, conf, log and pid file ($DIR/NAME/, logs/NAME.out, NAME.pid). A
# broker listens on PORT, PORT-2 (the VIP channel) and PORT+1 (HA): all three must be free. `stop` stops it too.
SERVICE=rocketmq
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/rocketmq/pom.xml
NAMESRV_PORT=${TXBOX_ROCKETMQ_NAMESRV_PORT:-9876}
BROKER_PORT=${TXBOX_ROCKETMQ_BROKER_PORT:-10911}
NAMESRV=127.0.0.1:$NAMESRV_PORT
BROKER=127.0.0.1:$BROKER_PORT
CLUSTER=DefaultCluster
BROKER_NAME=broker-a
DIR=$TXBOX_STATE_DIR/rocketmq
# TXBOX_ROCKETMQ_LIB shares the jars of another state directory (a fault run's private broker uses the installed
# ones instead of fetching them again).
LIB=${TXBOX_ROCKETMQ_LIB:-$DIR/lib}
STAMP=$LIB/.complete
LOGS=$DIR/logs
ADMIN=$DIR/bin/mqadmin
NAMESRV_PID=$DIR/namesrv.pid
BROKER_PID=$DIR/broker.pid
NAMESRV_MAIN=org.apache.rocketmq.namesrv.NamesrvStartup
BROKER_MAIN=org.apache.rocketmq.broker.BrokerStartup
# The broker refuses sends at >= 90% disk use (and deletes files early from 85%).
DISK_MAX_PCT=85
DISK_MIN_FREE_MB=2048

# Common JVM flags. user.home is where RocketMQ puts its logs (~/logs/rocketmqlogs), kv config and client state;
# rocketmq.home.dir must be set or both servers exit at once. One lib dir serves every process, so each one names
# its logback file (the jars carry rmq.{namesrv,broker,tools}.logback.xml; the first found would win otherwise).
jvm_common() {
	printf '%s\n' -cp "$LIB/*" -Drocketmq.home.dir="$DIR/home" -Duser.home="$DIR/home" -Dfile.encoding=UTF-8 \
		-XX:-OmitStackTraceInFastThrow \
		-Dlogback.statusListenerClass=org.apache.rocketmq.logging.ch.qos.logback.core.status.NopStatusListener
}

jars_complete() { [[ -s $STAMP && $(cat "$STAMP") == "$(sha256sum <"$POM" | cut -d' ' -f1)" ]]; }

cmd_install() {
	if jars_complete; then
		write_admin
		return 0
	fi
	[[ -z ${TXBOX_ROCKETMQ_LIB:-} ]] || die "TXBOX_ROCKETMQ_LIB=$LIB holds no complete set of jars (install them there first)"
	# A JDK (javac too: the admin wrapper is compiled here) and Maven, from Debian's packages when missing.
	if ! command -v java >/dev/null || ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
		apt_install openjdk-17-jdk-headless maven
	fi
	local v
	v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
		die "need JDK 17+ (java.specification.version=${v:-?})"
	fi
	log "fetching RocketMQ jars into $LIB (Maven Central, cached in ~/.m2)"
	mkdir -p "$DIR"
	rm -rf "$LIB.tmp"
	if ! mvn -B -q -f "$POM" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
		-DoutputDirectory="$LIB.tmp" -DincludeScope=runtime >"$DIR/mvn.log" 2>&1; then
		grep -E 'ERROR|FATAL' "$DIR/mvn.log" >&2 || cat "$DIR/mvn.log" >&2
		die "mvn copy-dependencies failed; see $DIR/mvn.log"
	fi
	compgen -G "$LIB.tmp/rocketmq-broker-*.jar" >/dev/null || die "no rocketmq-broker jar in $LIB.tmp"
	sha256sum <"$POM" | cut -d' ' -f1 >"$LIB.tmp/.complete"
	# Never swap the lib dir from under running servers (their class path is lib/*).
	if pid_alive "$BROKER_PID" || pid_alive "$NAMESRV_PID"; then
		die "the jars changed but RocketMQ is running: run '$0 stop' first"
	fi
	rm -rf "$LIB"
	mv "$LIB.tmp" "$LIB"
	log "$(find "$LIB" -name '*.jar' | wc -l) jars, $(du -sh "$LIB" | cut -f1) in $LIB"
	write_admin
}

# bin/mqadmin: the admin tool as one executable, for tests ($TXBOX_ROCKETMQ_ADMIN): MQAdminStartup behind
# rocketmq/TxboxMQAdmin.java (compiled here; it cuts the tool's ~3 s idle shutdown tail), in a small quick-starting
# JVM. -n still wins over the default name server address.
write_admin() {
	local src=$HERE/rocketmq/TxboxMQAdmin.java classes=$DIR/bin/classes sum
	sum=$(cat "$src" "$STAMP" | sha256sum | cut -d' ' -f1)
	if [[ -x $ADMIN && -s $classes/.src && $(cat "$classes/.src") == "$sum" ]]; then
		return 0
	fi
	command -v javac >/dev/null || die "javac not found: install a JDK 17+ (Debian: openjdk-17-jdk-headless)"
	mkdir -p "$DIR/bin" "$DIR/home"
	rm -rf "$classes.tmp"
	javac -nowarn -d "$classes.tmp" -cp "$LIB/*" "$src" || die "javac $src failed"
	echo "$sum" >"$classes.tmp/.src"
	rm -rf "$classes"
	mv "$classes.tmp" "$classes"
	local tmp=$ADMIN.tmp.$$ flags
	flags=$(jvm_common | sed -e "s|^$LIB/\*\$|$classes:&|" -e 's/.*/"&"/' | tr '\n' ' ')
	cat >"$tmp" <<EOF
#!/bin/sh
# Written by txbox's scripts/rocketmq.sh. MQAdminStartup exits 0 even when a command fails: check its output.
exec java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 $flags \\
	-Drmq.logback.configurationFile=rmq.tools.logback.xml -Drocketmq.namesrv.addr='$NAMESRV' \\
	TxboxMQAdmin "\$@"
EOF
	chmod +x "$tmp"
	mv "$tmp" "$ADMIN"
}

cmd_admin() {
	jars_complete || die "RocketMQ jars not installed (run: $0 install)"
	write_admin
	exec "$ADMIN" "$@"
}

admin() { "$ADMIN" "$@" 2>&1; }

# is_ours FILE MAIN: the pid in FILE is alive and is the java process running MAIN (not a recycled pid).
is_ours() {
	pid_alive "$1" && tr '\0' ' ' <"/proc/$(cat "$1")/cmdline" 2>/dev/null | grep -q " $2 "
}

# forget_stale FILE MAIN: drop a pid file whose process is gone or is not ours.
forget_stale() {
	if [[ -e $1 ]] && ! is_ours "$1" "$2"; then
		rm -f "$1"
	fi
}

# broker_registered_as NAME ADDR: the name server lists broker NAME (master) at ADDR in our cluster.
broker_registered_as() { admin clusterList -n "$NAMESRV" | grep -Eq "^$CLUSTER +$1 +0 +$2 "; }
broker_registered() { broker_registered_as "$BROKER_NAME" "$BROKER"; }

healthy() { is_ours "$NAMESRV_PID" "$NAMESRV_MAIN" && is_ours "$BROKER_PID" "$BROKER_MAIN" && broker_registered; }

check_disk() {
	mkdir -p "$DIR/store"
	local pct free
	read -r pct free < <(df -P -m "$DIR/store" | awk 'NR == 2 { sub("%", "", $5); print $5, $4 }')
	if ((pct >= DISK_MAX_PCT || free < DISK_MIN_FREE_MB)); then
		die "disk of $DIR/store is ${pct}% used, ${free} MB free: the broker refuses sends at 90% and deletes" \
			"messages from 85%; need < ${DISK_MAX_PCT}% and >= ${DISK_MIN_FREE_MB} MB free (set TXBOX_STATE_DIR elsewhere or free space)"
	fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# render TEMPLATE OUT: the config template with our paths and ports.
render() {
	sed -e "s|@DIR@|$DIR|g" -e "s|@NAMESRV_PORT@|$NAMESRV_PORT|g" -e "s|@BROKER_PORT@|$BROKER_PORT|g" \
		-e "s|@HA_PORT@|$((BROKER_PORT + 1))|g" "$1" >"$2.tmp"
	mv "$2.tmp" "$2"
}

# launch NAME PIDFILE JVM-ARGS...: starts java detached (own session, no stdin), output to logs/NAME.out. The process
# writes its own pid before it execs java, so the pid file is right whether or not setsid had to fork.
launch() {
	local name=$1 pidfile=$2; shift 2
	if [[ -f $LOGS/$name.out ]]; then mv "$LOGS/$name.out" "$LOGS/$name.out.prev"; fi
	local -a common
	mapfile -t common < <(jvm_common)
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # $$ and $0 belong to the inner shell
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" java "${common[@]}" "$@" </dev/null >"$LOGS/$name.out" 2>&1 &
}

# booted PIDFILE MAIN OUTFILE LINE: the process is still ours and printed its boot line.
booted() { is_ours "$1" "$2" && grep -q "$4" "$3"; }

cmd_start() {
	cmd_install
	forget_stale "$NAMESRV_PID" "$NAMESRV_MAIN"
	forget_stale "$BROKER_PID" "$BROKER_MAIN"
	if [[ -s $NAMESRV_PID && -s $BROKER_PID ]] && healthy; then
		log "already running: name server $NAMESRV, broker $BROKER_NAME on $BROKER"
		return 0
	fi
	check_disk
	mkdir -p "$DIR/conf" "$DIR/home" "$LOGS"
	# RocketMQ writes its own logs to ~/logs/rocketmqlogs; with user.home=home/ that is logs/rocketmqlogs.
	[[ -L $DIR/home/logs ]] || ln -sfn ../logs "$DIR/home/logs"
	render "$HERE/rocketmq/namesrv.properties" "$DIR/conf/namesrv.properties"
	render "$HERE/rocketmq/broker.conf" "$DIR/conf/broker.conf"

	if ! is_ours "$NAMESRV_PID" "$NAMESRV_MAIN"; then
		port_free "$NAMESRV_PORT" || die "127.0.0.1:$NAMESRV_PORT is taken by a process we did not start"
		log "starting name server on $NAMESRV"
		launch namesrv "$NAMESRV_PID" -XX:+UseG1GC -Xms128m -Xmx256m -XX:MaxDirectMemorySize=128m \
			-Drmq.logback.configurationFile=rmq.namesrv.logback.xml \
			$NAMESRV_MAIN -c "$DIR/conf/namesrv.properties"
	fi
	wait_until 60 "the name server's boot line" booted "$NAMESRV_PID" "$NAMESRV_MAIN" "$LOGS/namesrv.out" \
		"The Name Server boot success" || die "name server did not start; see $LOGS/namesrv.out"

	if ! is_ours "$BROKER_PID" "$BROKER_MAIN"; then
		local p
		for p in "$BROKER_PORT" $((BROKER_PORT - 2)) $((BROKER_PORT + 1)); do
			port_free "$p" || die "port $p (broker) is taken by a process we did not start"
		done
		log "starting broker $BROKER_NAME on $BROKER"
		launch broker "$BROKER_PID" -XX:+UseG1GC -XX:SoftRefLRUPolicyMSPerMB=0 -Xms512m -Xmx1g -XX:MaxDirectMemorySize=512m \
			-Drmq.logback.configurationFile=rmq.broker.logback.xml \
			$BROKER_MAIN -c "$DIR/conf/broker.conf"
	fi
	wait_until 120 "the broker's boot line" booted "$BROKER_PID" "$BROKER_MAIN" "$LOGS/broker.out" "boot success" ||
		die "broker did not start; see $LOGS/broker.out and $LOGS/rocketmqlogs/broker.log"
	wait_until 60 "$BROKER_NAME to register with the name server" broker_registered ||
		die "broker not registered with $NAMESRV; see $LOGS/rocketmqlogs/broker.log"
	log "ready: name server $NAMESRV, broker $BROKER_NAME on $BROKER (admin: $ADMIN)"
}

cmd_stop() {
	local pid
	for pid in "$DIR"/broker-*.pid; do
		[[ -e $pid ]] || continue
		forget_stale "$pid" "$BROKER_MAIN"
		stop_pid "$pid" "broker $(basename "$pid" .pid)"
	done
	forget_stale "$BROKER_PID" "$BROKER_MAIN"
	forget_stale "$NAMESRV_PID" "$NAMESRV_MAIN"
	stop_pid "$BROKER_PID" broker
	stop_pid "$NAMESRV_PID" "name server"
}

cmd_status() {
	if [[ -x $ADMIN ]] && healthy; then
		echo "rocketmq: up, name server $NAMESRV, broker $BROKER_NAME on $BROKER"
	else
		echo "rocketmq: down"
		return 1
	fi
}

cmd_env() {
	echo "export TXBOX_ROCKETMQ_NAMESRV='$NAMESRV'"
	echo "export TXBOX_ROCKETMQ_BROKER='$BROKER'"
	echo "export TXBOX_ROCKETMQ_ADMIN='$ADMIN'"
}

# route_has TOPIC QUEUES: the name server's route for TOPIC shows every broker of our cluster (broker-a and those
# broker-start added) with QUEUES read and write queues.
route_has() {
	local out name
	out=$(admin topicRoute -n "$NAMESRV" -t "$1")
	for name in $BROKER_NAME $(admin clusterList -n "$NAMESRV" | awk -v c="$CLUSTER" '$1 == c && $2 != "'"$BROKER_NAME"'" { print $2 }'); do
		grep -q "\"brokerName\":\"$name\"" <<<"$out" || return 1
	done
	grep -Eq "\"readQueueNums\":$2([^0-9]|$)" <<<"$out" && grep -Eq "\"writeQueueNums\":$2([^0-9]|$)" <<<"$out"
}

cmd_topic() {
	local topic=${1:-} queues=${2:-4} out
	[[ -n $topic ]] || die "usage: $0 topic NAME [QUEUES]"
	[[ $queues =~ ^[1-9][0-9]*$ ]] || die "QUEUES must be a positive number, not '$queues'"
	jars_complete || die "RocketMQ jars not installed (run: $0 start)"
	write_admin
	out=$(admin updateTopic -n "$NAMESRV" -c "$CLUSTER" -t "$topic" -r "$queues" -w "$queues")
	grep -q "success" <<<"$out" || die "updateTopic $topic failed: $out"
	wait_until 30 "the route of topic $topic" route_has "$topic" "$queues" ||
		die "topic $topic has no route with $queues queues on $NAMESRV"
	log "topic $topic: $queues read/$queues write queues on every broker of $CLUSTER"
}

cmd_broker_start() {
	local name=${1:-} port=${2:-} p
	[[ $name =~ ^broker-[a-z0-9]+$ && $name != "$BROKER_NAME" && $port =~ ^[1-9][0-9]*$ ]] ||
		die "usage: $0 broker-start NAME PORT (NAME like broker-b; broker-a is the one '$0 start' runs)"
	jars_complete || die "RocketMQ jars not installed (run: $0 start)"
	write_admin
	is_ours "$NAMESRV_PID" "$NAMESRV_MAIN" || die "no name server of ours runs on $NAMESRV (run: $0 start)"
	local dir=$DIR/$name pidfile=$DIR/$name.pid conf=$DIR/conf/$name.conf addr=127.0.0.1:$port
	forget_stale "$pidfile" "$BROKER_MAIN"
	if is_ours "$pidfile" "$BROKER_MAIN" && broker_registered_as "$name" "$addr"; then
		log "already running: broker $name on $addr"
		return 0
	fi
	check_disk
	is_ours "$pidfile" "$BROKER_MAIN" || for p in "$port" $((port - 2)) $((port + 1)); do
		port_free "$p" || die "port $p (broker $name) is taken by a process we did not start"
	done
	mkdir -p "$dir/home" "$DIR/conf" "$LOGS/$name"
	[[ -L $dir/home/logs ]] || ln -sfn "$LOGS/$name" "$dir/home/logs"
	# The shared template, with this broker's name, ports and store.
	BROKER_PORT=$port render "$HERE/rocketmq/broker.conf" "$conf.tmpl"
	sed -e "s|^brokerName=.*|brokerName=$name|" -e "s|=$DIR/store|=$dir/store|" "$conf.tmpl" >"$conf"
	rm -f "$conf.tmpl"
	if ! is_ours "$pidfile" "$BROKER_MAIN"; then
		log "starting broker $name on $addr"
		# -Duser.home last: it overrides jvm_common's, so that this broker's kv config and logs are its own.
		launch "$name" "$pidfile" -XX:+UseG1GC -XX:SoftRefLRUPolicyMSPerMB=0 -Xms512m -Xmx1g -XX:MaxDirectMemorySize=512m \
			-Drmq.logback.configurationFile=rmq.broker.logback.xml -Duser.home="$dir/home" \
			$BROKER_MAIN -c "$conf"
	fi
	wait_until 120 "broker $name's boot line" booted "$pidfile" "$BROKER_MAIN" "$LOGS/$name.out" "boot success" ||
		die "broker $name did not start; see $LOGS/$name.out"
	wait_until 60 "$name to register with the name server" broker_registered_as "$name" "$addr" ||
		die "broker $name not registered with $NAMESRV; see $LOGS/$name/rocketmqlogs/broker.log"
	log "ready: broker $name on $addr, cluster $CLUSTER, name server $NAMESRV"
}

cmd_broker_stop() {
	local name=${1:-}
	[[ $name =~ ^broker-[a-z0-9]+$ && $name != "$BROKER_NAME" ]] || die "usage: $0 broker-stop NAME"
	forget_stale "$DIR/$name.pid" "$BROKER_MAIN"
	stop_pid "$DIR/$name.pid" "broker $name"
}

case "${1:-}" in
install | start | stop | status | env) "cmd_$1" ;;
admin | topic) cmd=$1; shift; "cmd_$cmd" "$@" ;;
broker-start | broker-stop) cmd=${1//-/_}; shift; "cmd_$cmd" "$@" ;;
*) echo "usage: $0 install|start|stop|status|env|admin ARGS...|topic NAME [QUEUES]|broker-start NAME PORT|broker-stop NAME" >&2; exit 2 ;;
esac
