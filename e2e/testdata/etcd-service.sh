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
label="etcd-service: $name" dirflag=--data-dir=
. "$(dirname "$0")/service-lib.sh"

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
	mapfile -t args <"$state/flags"
	launch "$(<"$state/bin")" "${args[@]}" || exit 1
	;;
stop)
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		event "stop: not running"
		exit 0
	fi
	stop_process "$pid" 100 || exit 1
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
