#!/usr/bin/env bash
# etcd-service.sh: service control for one etcd member run as a plain OS process,
# standing in for systemd on a real installation in the e2e tests. The target
# file's service entry calls it:
#
#   etcd-service.sh start NAME STATEDIR    launch the member in the background
#   etcd-service.sh stop  NAME STATEDIR    SIGTERM it and wait until it has exited
#   etcd-service.sh status NAME STATEDIR   exit 0 when it runs, 3 when it does not
#
# STATEDIR holds what the test wrote:
#   bin     path of the etcd binary (one line)
#   flags   etcd's arguments, one per line
# and what this script keeps:
#   pid     the running member's pid
#   log     the member's stdout and stderr (appended)
#   events  one line per action, for the tests to watch
#
# start does not wait for the member to be ready (the driver's etcd.wait_healthy
# does); stop is idempotent: stopping a stopped member succeeds.
#
# Fault hooks, marker files in STATEDIR:
#   fail-next-start  start fails (exit 1) once, without launching; the marker is removed
#   slow-start       start waits 30 s before launching (once; the marker is removed),
#                    leaving time for a Ctrl-C; killed while waiting, it launches nothing
set -u

action=${1:?usage: etcd-service.sh start|stop|status NAME STATEDIR}
name=${2:?member name missing}
state=${3:?state dir missing}
pidfile=$state/pid

event() { printf '%s %s %s\n' "$(date +%s.%N)" "$name" "$*" >>"$state/events"; }

# alive PID: the process exists and is not a zombie (an exited member whose parent,
# init, has not reaped it yet counts as stopped).
alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

# ours PID: the process is this member's etcd (guards against a reused pid).
ours() {
	local dd
	dd=$(grep -m1 -- '^--data-dir=' "$state/flags") || return 1
	tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$dd"
}

running_pid() {
	local pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && ours "$pid" || return 1
	echo "$pid"
}

case $action in
start)
	if [[ -e $state/fail-next-start ]]; then
		rm -f "$state/fail-next-start"
		event "start failed (fail-next-start)"
		echo "etcd-service: $name: refusing to start (fail-next-start marker)" >&2
		exit 1
	fi
	if [[ -e $state/slow-start ]]; then
		rm -f "$state/slow-start"
		event "slow start: waiting 30s"
		# Short sleeps: if this script is killed meanwhile, no long sleep outlives it.
		for _ in $(seq 300); do sleep 0.1 </dev/null >/dev/null 2>&1; done
	fi
	if pid=$(running_pid); then
		event "start: already running (pid $pid)"
		exit 0
	fi
	bin=$(<"$state/bin")
	mapfile -t args <"$state/flags"
	rm -f "$pidfile" "$pidfile.new"
	# Its own session, so a Ctrl-C at the terminal of whoever ran this does not
	# reach the member; no inherited stdout, so the caller does not wait for it.
	setsid sh -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec "$@"' "$pidfile" "$bin" "${args[@]}" \
		</dev/null >>"$state/log" 2>&1 &
	for _ in $(seq 100); do
		[[ -s $pidfile ]] && break
		sleep 0.05
	done
	if [[ ! -s $pidfile ]]; then
		event "start failed: no pid"
		echo "etcd-service: $name: the member did not start (see $state/log)" >&2
		exit 1
	fi
	event "started pid $(<"$pidfile")"
	;;
stop)
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		event "stop: not running"
		exit 0
	fi
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		for _ in $(seq 50); do
			alive "$pid" || break
			sleep 0.1
		done
		event "stop: killed pid $pid after 10s"
	else
		event "stopped pid $pid"
	fi
	if alive "$pid"; then
		echo "etcd-service: $name: pid $pid does not exit" >&2
		exit 1
	fi
	rm -f "$pidfile"
	;;
status)
	if pid=$(running_pid); then
		echo "$name running, pid $pid"
		exit 0
	fi
	echo "$name stopped"
	exit 3
	;;
*)
	echo "etcd-service: unknown action $action (start, stop, status)" >&2
	exit 2
	;;
esac
