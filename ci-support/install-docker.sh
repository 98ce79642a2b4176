#!/usr/bin/env bash
# Make a Docker daemon available for the docker backend's tests (tests/docker), on a fresh Debian 12
# CI machine with no systemd and no network but the package registries.
#
#   bash ci-support/install-docker.sh        (as root; called from .ci/run)
#
# Installs docker.io, containerd, runc, mmdebstrap (the offline image builder) and iptables from
# Debian when missing, starts dockerd in the background (log: $DOCKERD_LOG, default
# /var/log/edge-conformance-dockerd.log) and waits up to 60 s for `docker info`.
#
# It NEVER fails the CI: whatever goes wrong is printed and the script exits 0; the docker tests then
# skip with the reason ("no Docker daemon reachable: ...").
set -u

log() { echo "install-docker: $*" >&2; }
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/edge-conformance-dockerd.log}"
WAIT_S="${DOCKER_WAIT_S:-60}"

main() {
  if [ "$(id -u)" != 0 ]; then
    log "not root: cannot install or start Docker; the docker tests will skip"
    return 0
  fi
  if docker info >/dev/null 2>&1; then
    log "a Docker daemon is already running"
    ensure_tools
    return 0
  fi
  ensure_packages || { log "could not install Docker from Debian; the docker tests will skip"; return 0; }
  start_dockerd
}

missing_packages() {
  local want=() pkg
  command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  command -v containerd >/dev/null 2>&1 || want+=(containerd)
  command -v runc >/dev/null 2>&1 || want+=(runc)
  command -v mmdebstrap >/dev/null 2>&1 || want+=(mmdebstrap)
  command -v iptables >/dev/null 2>&1 || want+=(iptables)
  command -v tc >/dev/null 2>&1 || want+=(iproute2)
  for pkg in "${want[@]}"; do echo "$pkg"; done
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  log "installing from Debian: $*"
  if ! apt-get install -y -q --no-install-recommends "$@" >/tmp/install-docker-apt.log 2>&1; then
    apt-get update -q >>/tmp/install-docker-apt.log 2>&1 || true
    if ! apt-get install -y -q --no-install-recommends "$@" >>/tmp/install-docker-apt.log 2>&1; then
      log "apt-get install failed (last lines of /tmp/install-docker-apt.log):"
      tail -n 5 /tmp/install-docker-apt.log >&2
      return 1
    fi
  fi
}

ensure_packages() {
  local want
  want=$(missing_packages)
  [ -z "$want" ] && return 0
  # shellcheck disable=SC2086
  apt_install $want
}

ensure_tools() {  # a daemon runs, but the image builder may still be missing
  command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap || log "mmdebstrap missing: image builds will fail"
}

dockerd_running() {
  if command -v pgrep >/dev/null 2>&1; then pgrep -x dockerd >/dev/null 2>&1; else pidof dockerd >/dev/null 2>&1; fi
}

start_dockerd() {
  if ! dockerd_running; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the daemon outlives this script and the CI step's process group.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  else
    log "dockerd is running but not answering yet; waiting for it"
  fi
  local i
  for ((i = 0; i < WAIT_S; i++)); do
    if docker info >/dev/null 2>&1; then
      log "Docker is up after ${i} s: $(docker info --format '{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}' 2>/dev/null)"
      return 0
    fi
    if ! dockerd_running; then
      log "dockerd exited; last lines of $DOCKERD_LOG:"
      tail -n 10 "$DOCKERD_LOG" >&2
      log "the docker tests will skip"
      return 0
    fi
    sleep 1
  done
  log "dockerd did not answer within ${WAIT_S} s; last lines of $DOCKERD_LOG:"
  tail -n 10 "$DOCKERD_LOG" >&2
  log "the docker tests will skip"
  return 0
}

main || true
exit 0
