#!/usr/bin/env bash
# mysql-service.sh: service control for a mariadbd run as a plain OS process, standing
# in for systemd on a real installation in the e2e tests. The target file's service
# entry calls it:
#
#   mysql-service.sh start STATEDIR   launch mariadbd in the background
#   mysql-service.sh stop  STATEDIR   SIGTERM it (a clean shutdown) and wait until it exited
#
# STATEDIR holds the server's flags (one per line, written by the test), and this
# script's pid, log and events files. start returns once the process runs; the
# driver waits until the server answers. stop is idempotent.
#
# Fault hook: a file fail-next-start in STATEDIR makes the next start fail (exit 1)
# without launching; the marker is removed.
set -u

action=${1:?usage: mysql-service.sh start|stop STATEDIR}
state=${2:?state dir missing}
pidfile=$state/pid

event() { printf '%s %s\n' "$(date +%s.%N)" "$*" >>"$state/events"; }

alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

running_pid() {
	local pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$(grep -m1 -- '^--datadir=' "$state/flags")" || return 1
	echo "$pid"
}

case $action in
start)
	if [[ -e $state/fail-next-start ]]; then
		rm -f "$state/fail-next-start"
		event "start failed (fail-next-start)"
		echo "mysql-service: refusing to start (fail-next-start marker)" >&2
		exit 1
	fi
	if pid=$(running_pid); then
		event "start: already running (pid $pid)"
		exit 0
	fi
	mapfile -t args <"$state/flags"
	rm -f "$pidfile" "$pidfile.new"
	setsid sh -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec mariadbd "$@"' "$pidfile" "${args[@]}" \
		</dev/null >>"$state/log" 2>&1 &
	for _ in $(seq 100); do
		[[ -s $pidfile ]] && break
		sleep 0.05
	done
	if [[ ! -s $pidfile ]]; then
		event "start failed: no pid"
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
	for _ in $(seq 600); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		sleep 0.5
		event "stop: killed pid $pid after 60s"
	else
		event "stopped pid $pid"
	fi
	rm -f "$pidfile"
	;;
*)
	echo "mysql-service: unknown action $action (start, stop)" >&2
	exit 2
	;;
esac
