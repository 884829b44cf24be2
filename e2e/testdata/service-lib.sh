# service-lib.sh: what etcd-service.sh and mysql-service.sh share, sourced by both.
# A server runs as a plain OS process in its own session, with its pid in
# STATEDIR/pid; it is found again only while it runs the same data dir (a reused
# pid is not ours), and stopped with SIGTERM, then SIGKILL after a grace time.
#
# The caller sets, before sourcing:
#   state    STATEDIR
#   label    what events and errors name (a member name, or "mysql")
#   dirflag  the flag of STATEDIR/flags that names the data dir (--data-dir=, --datadir=)
# and calls: event MSG, running_pid, launch CMD ARGS..., stop_process PID GRACE_TENTHS.

pidfile=$state/pid

# event MSG: one line in STATEDIR/events, for the tests to watch.
event() { printf '%s %s\n' "$(date +%s.%N)" "$*" >>"$state/events"; }

# alive PID: the process exists and is not a zombie (an exited server whose parent,
# init, has not reaped it yet counts as stopped).
alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

# ours PID: the process runs with this server's data dir flag.
ours() {
	local dd
	dd=$(grep -m1 -- "^$dirflag" "$state/flags") || return 1
	tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$dd"
}

# running_pid: prints the server's pid when it runs; fails otherwise.
running_pid() {
	local pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && ours "$pid" || return 1
	echo "$pid"
}

# launch CMD ARGS...: starts the server in the background and waits for its pid.
# Its own session, so a Ctrl-C at the terminal of whoever ran this does not reach
# it; no inherited stdout, so the caller does not wait for it.
launch() {
	rm -f "$pidfile" "$pidfile.new"
	setsid sh -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec "$@"' "$pidfile" "$@" \
		</dev/null >>"$state/log" 2>&1 &
	for _ in $(seq 100); do
		[[ -s $pidfile ]] && break
		sleep 0.05
	done
	if [[ ! -s $pidfile ]]; then
		event "start failed: no pid"
		echo "$label: the server did not start (see $state/log)" >&2
		return 1
	fi
	event "started pid $(<"$pidfile")"
}

# stop_process PID GRACE_TENTHS: SIGTERM, then SIGKILL after GRACE_TENTHS tenths of
# a second; fails when the process still does not exit.
stop_process() {
	local pid=$1 grace=$2
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq "$grace"); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		for _ in $(seq 50); do
			alive "$pid" || break
			sleep 0.1
		done
		event "stop: killed pid $pid after $((grace / 10))s"
	else
		event "stopped pid $pid"
	fi
	if alive "$pid"; then
		echo "$label: pid $pid does not exit" >&2
		return 1
	fi
	rm -f "$pidfile"
}
