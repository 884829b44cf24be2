#!/usr/bin/env bash
# The test command of restore-run (README, CI via .ci/run).
#
# On a fresh Debian 12 machine (as root, or a user with sudo) it installs what the
# tests need, then runs every check and every test, end-to-end tests included:
#
#   install_etcd      Debian's etcd-server and etcd-client (etcd 3.4): the e2e tests
#                     make old-version snapshots with them. The package's own etcd
#                     service is never left running.
#   install_mariadb   Debian's mariadb-server, mariadb-backup, mydumper and zstd: the
#                     mysql e2e tests run throwaway mariadbd servers. The package's own
#                     mariadb service is never left running.
#   install_cassandra cassandra-all 5.0 and its runtime jars from Maven Central into
#                     third_party/cassandra/lib (the Cassandra tests run nodes from them)
#   install_chromium  Debian's chromium: a drill test renders a drill's HTML report
#                     headless and checks the screenshot
#   go_deps           go mod download
#   install_versitygw versitygw (S3-compatible test server) into third_party/bin,
#                     with go install from the Go module proxy
#   go_vet            go vet ./...
#   gofmt_check       fails listing the files gofmt would change
#   go_tests          go test ./... -count=1 -timeout 40m (the e2e fault suite's disk-full
#                     rows mount a small tmpfs, so the tests run as root, as CI does)
#
# Downloads stay out of git: Go modules go to the Go module cache, tool binaries and
# jars to third_party/ and .cache/ (both ignored).
#
# Usage: ./test.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# now_ms: milliseconds since the epoch (bash 5's EPOCHREALTIME, no extra tools).
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# seconds MS: MS milliseconds as seconds with one decimal.
seconds() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# The step running now, when it started, and files to remove however the script
# ends (a temporary policy-rc.d).
current_step=""
step_start=0
cleanup=()

on_exit() {
	local rc=$?
	if [ ${#cleanup[@]} -gt 0 ]; then
		$SUDO rm -f "${cleanup[@]}"
	fi
	if [ "$rc" -ne 0 ] && [ -n "$current_step" ]; then
		echo "==> ${current_step}: FAILED after $(seconds $(($(now_ms) - step_start)))s (exit $rc)" >&2
	fi
}
trap on_exit EXIT

# step NAME FUNCTION: run FUNCTION and print how long it took.
step() {
	current_step=$1
	step_start=$(now_ms)
	echo "==> ${current_step}"
	"$2"
	echo "==> ${current_step}: done in $(seconds $(($(now_ms) - step_start)))s"
	current_step=""
}

# missing_debs PKG...: prints the packages that are not installed.
missing_debs() {
	local p
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			echo "$p"
		fi
	done
}

# install_debs PKG...: installs the packages that are missing (apt-get update only
# then). Services that packages try to start at install time are refused with a
# temporary policy-rc.d (respected by invoke-rc.d and deb-systemd-invoke).
install_debs() {
	local missing
	missing=$(missing_debs "$@")
	if [ -z "$missing" ]; then
		echo "already installed: $*"
		return
	fi
	# shellcheck disable=SC2086 # one word per package
	echo "installing:" $missing
	local policy=/usr/sbin/policy-rc.d own_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# written by restore-run test.sh while it installs packages\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		own_policy=1
		cleanup+=("$policy")
	fi
	local rc=0
	{
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			# shellcheck disable=SC2086
			$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
	} || rc=$?
	if [ -n "$own_policy" ]; then
		$SUDO rm -f "$policy"
		cleanup=()
	fi
	return "$rc"
}

# system_etcd_pids: the pids of etcd processes run by the etcd user (the packaged
# service), read from /proc so that minimal images without procps work too.
system_etcd_pids() {
	local d
	for d in /proc/[0-9]*; do
		if [ "$(cat "$d/comm" 2>/dev/null)" = etcd ] && [ "$(stat -c %U "$d" 2>/dev/null)" = etcd ]; then
			echo "${d#/proc/}"
		fi
	done
}

install_etcd() {
	install_debs etcd-server etcd-client
	# Debian's etcd-server enables an etcd service on 2379/2380 and starts it when it
	# can. The tests run their own etcd on free ports: make sure the system one is
	# disabled and not running.
	if [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
	else
		if command -v systemctl >/dev/null; then
			$SUDO systemctl disable etcd.service >/dev/null 2>&1 || true
		fi
		if [ -x /etc/init.d/etcd ]; then
			$SUDO /etc/init.d/etcd stop >/dev/null 2>&1 || true
		fi
	fi
	# Whatever started it, the packaged service runs as the etcd user.
	local pids
	pids=$(system_etcd_pids)
	if [ -n "$pids" ]; then
		echo "stopping the system etcd (pids" $pids")"
		# shellcheck disable=SC2086
		$SUDO kill $pids
		local i
		for i in 1 2 3 4 5 6 7 8 9 10; do
			[ -z "$(system_etcd_pids)" ] && break
			sleep 0.5
		done
	fi
	if [ -n "$(system_etcd_pids)" ]; then
		echo "test.sh: the system etcd service is still running; stop it (systemctl disable --now etcd)" >&2
		return 1
	fi
	# First lines only, without a pipe into head (SIGPIPE under pipefail).
	local server client
	server=$(/usr/bin/etcd --version)
	client=$(ETCDCTL_API=3 /usr/bin/etcdctl version)
	echo "${server%%$'\n'*} at /usr/bin/etcd; ${client%%$'\n'*} at /usr/bin/etcdctl"
}

# system_mariadb_pids: the pids of mariadbd processes run by the mysql user (the
# packaged service), read from /proc.
system_mariadb_pids() {
	local d
	for d in /proc/[0-9]*; do
		if [ "$(cat "$d/comm" 2>/dev/null)" = mariadbd ] && [ "$(stat -c %U "$d" 2>/dev/null)" = mysql ]; then
			echo "${d#/proc/}"
		fi
	done
}

# install_mariadb: Debian's MariaDB server, mariabackup, mydumper/myloader and zstd
# for the mysql driver's e2e tests, which start throwaway mariadbd processes on temp
# dirs. The package's own mariadb service is disabled and never left running.
install_mariadb() {
	install_debs mariadb-server mariadb-backup mydumper zstd
	if [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now mariadb.service >/dev/null 2>&1 || true
	elif command -v systemctl >/dev/null; then
		$SUDO systemctl disable mariadb.service >/dev/null 2>&1 || true
	fi
	if [ -x /etc/init.d/mariadb ] && [ -n "$(system_mariadb_pids)" ]; then
		$SUDO /etc/init.d/mariadb stop >/dev/null 2>&1 || true
	fi
	local pids
	pids=$(system_mariadb_pids)
	if [ -n "$pids" ]; then
		echo "stopping the system mariadbd (pids" $pids")"
		# shellcheck disable=SC2086
		$SUDO kill $pids
		local i
		for i in $(seq 60); do
			[ -z "$(system_mariadb_pids)" ] && break
			sleep 0.5
		done
	fi
	if [ -n "$(system_mariadb_pids)" ]; then
		echo "test.sh: the system mariadb service is still running; stop it (systemctl disable --now mariadb)" >&2
		return 1
	fi
	local v
	v=$(mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version)
	echo "$v; $(mariabackup --version 2>&1 | tail -n 1); $(myloader --version)"
}

# Cassandra for the cassandra driver's tests (cassops, e2e TestCassandra*): the
# cassandra-all jar and every runtime dependency (~70 MB) copied from Maven Central
# by Maven's dependency plugin into third_party/cassandra/lib (git-ignored; Maven's
# cache ~/.m2 is reused). The launcher runs them on the machine's JDK 17. Keep the
# version on the 5.0 line (4.x does not run on JDK 17).
CASSANDRA_VERSION=5.0.8

install_cassandra() {
	local dir=$PWD/third_party/cassandra
	local lib=$dir/lib
	if [ -f "$lib/.complete-${CASSANDRA_VERSION}" ] && [ -f "$lib/cassandra-all-${CASSANDRA_VERSION}.jar" ]; then
		echo "already installed: cassandra-all ${CASSANDRA_VERSION} and its dependencies at third_party/cassandra/lib"
		return
	fi
	command -v java >/dev/null || install_debs openjdk-17-jdk-headless
	command -v mvn >/dev/null || install_debs maven
	mkdir -p "$dir"
	cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>restore-run.test</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>${CASSANDRA_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM
	rm -rf "$lib.tmp"
	mvn -q -B -Dstyle.color=never -f "$dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib.tmp"
	touch "$lib.tmp/.complete-${CASSANDRA_VERSION}"
	rm -rf "$lib"
	mv "$lib.tmp" "$lib"
	echo "installed: cassandra-all ${CASSANDRA_VERSION} and $(ls "$lib" | wc -l) jars at third_party/cassandra/lib; $(java -version 2>&1 | head -n 1)"
}

# Later installs go here, each as its own function called from main.

# install_chromium: Debian's chromium, which the drill tests (e2e TestDrillReportInChromium)
# run headless to render a drill's HTML report and take a screenshot of it.
install_chromium() {
	install_debs chromium
	echo "$(chromium --version 2>/dev/null || echo chromium) at $(command -v chromium)"
}

# The S3-compatible server of the tests (internal/s3test): versitygw, Apache-2.0,
# built from the Go module proxy into third_party/bin (git-ignored). Keep the
# version in step with internal/s3test.Version.
VERSITYGW_VERSION=v1.8.0

install_versitygw() {
	local bin=$PWD/third_party/bin/versitygw
	# versitygw --version says "git" for a go install build: read the module
	# version Go recorded in the binary instead.
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/versity/versitygw[[:space:]]+${VERSITYGW_VERSION}[[:space:]]"; then
		echo "already installed: versitygw ${VERSITYGW_VERSION} at third_party/bin/versitygw"
		return
	fi
	echo "building versitygw ${VERSITYGW_VERSION} into third_party/bin (about a minute)"
	mkdir -p third_party/bin
	GOBIN=$PWD/third_party/bin go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
	echo "installed: versitygw ${VERSITYGW_VERSION} at third_party/bin/versitygw"
}

check_go() {
	if ! command -v go >/dev/null; then
		echo "test.sh: go is not on PATH; install Go (see go.mod for the version)" >&2
		return 1
	fi
	go version
}

go_deps() { go mod download; }

go_vet() { go vet ./...; }

gofmt_check() {
	# The Go files of the module's packages (tests and build-tagged files included;
	# testdata, .cache and third_party are not packages of the module).
	local files bad
	files=$(go list -f '{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .CgoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .TestGoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .XTestGoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .IgnoredGoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}' ./...)
	bad=$(echo "$files" | xargs -r gofmt -l | sed "s|^$PWD/||")
	if [ -n "$bad" ]; then
		echo "gofmt would change these files (run gofmt -w on them):" >&2
		echo "$bad" >&2
		return 1
	fi
}

go_tests() { go test ./... -count=1 -timeout 40m; }

main() {
	local start
	start=$(now_ms)
	step "check go" check_go
	step "install etcd 3.4 (Debian)" install_etcd
	step "install MariaDB 10.11, mariabackup, mydumper (Debian)" install_mariadb
	step "install cassandra 5.0 jars (Maven)" install_cassandra
	step "install chromium (Debian)" install_chromium
	step "go mod download" go_deps
	step "install versitygw (S3 test server)" install_versitygw
	step "go vet" go_vet
	step "gofmt" gofmt_check
	step "go test" go_tests
	echo "==> all steps passed in $(seconds $(($(now_ms) - start)))s"
}

main "$@"
