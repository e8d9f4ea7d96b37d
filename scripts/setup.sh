#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine with Go,
# and starts a Docker engine when none answers. Safe to run again: it only
# acts on what is missing. Used by "make test", "make demo" and .ci/run.
set -euo pipefail

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup: not root and no sudo; install haproxy, gcc, prometheus, nginx, systemd, docker-compose and docker.io yourself" >&2
  fi
fi

# Packages such as nginx and prometheus start their daemon when installed.
# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d first: exit
# 101 refuses every start for the duration of the install. A policy-rc.d
# already there is put back afterwards.
policy=/usr/sbin/policy-rc.d
refuse_service_starts() {
  trap allow_service_starts EXIT
  $sudo sh -c "if [ -e $policy ] && [ ! -e $policy.setup-saved ]; then mv $policy $policy.setup-saved; fi
    printf '#!/bin/sh\\n# scripts/setup.sh: no service starts while it installs packages\\nexit 101\\n' > $policy && chmod 755 $policy"
}
allow_service_starts() {
  trap - EXIT
  $sudo sh -c "rm -f $policy; if [ -e $policy.setup-saved ]; then mv $policy.setup-saved $policy; fi"
}

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v gcc >/dev/null || need+=(gcc)                  # go test -race needs cgo
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)  # promtool and a real scrape of examples/
command -v nginx >/dev/null || need+=(nginx)              # nginx -t and the TLS front of examples/nginx
command -v systemd-analyze >/dev/null || need+=(systemd)  # systemd-analyze verify of examples/systemd
command -v docker-compose >/dev/null || need+=(docker-compose)  # docker-compose config of examples/compose.yaml
docker_ok() { docker info >/dev/null 2>&1 || curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; }
# docker.io: the engine when none answers and none is installed, and the
# docker CLI, which the ssh:// test runs as the remote side's dial-stdio.
if ! command -v docker >/dev/null || { ! docker_ok && ! command -v dockerd >/dev/null; }; then need+=(docker.io); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  refuse_service_starts
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  allow_service_starts
  # Tests run their own nginx and prometheus; keep the packages' units off at boot.
  for unit in nginx prometheus; do
    if [[ " ${need[*]} " == *" $unit "* ]]; then $sudo systemctl disable --quiet "$unit" >/dev/null 2>&1 || true; fi
  done
fi

if ! docker_ok; then
  echo "setup: no Docker engine answers; starting dockerd (log: /tmp/dockerd.log)"
  $sudo sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker_ok && break; sleep 0.5; done
  docker_ok || { echo "setup: dockerd did not come up:" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi
echo "setup: $(haproxy -v | sed -n 1p | cut -d' ' -f1-3), Docker engine answering, $(go version | cut -d' ' -f3)"
