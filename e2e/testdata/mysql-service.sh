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
label=mysql-service dirflag=--datadir=
. "$(dirname "$0")/service-lib.sh"

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
	launch mariadbd "${args[@]}" || exit 1
	;;
stop)
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		event "stop: not running"
		exit 0
	fi
	stop_process "$pid" 600 || exit 1
	;;
*)
	echo "mysql-service: unknown action $action (start, stop)" >&2
	exit 2
	;;
esac
