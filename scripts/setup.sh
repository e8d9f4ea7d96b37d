#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine with Go,
# and starts a Docker engine when none answers. Safe to run again: it only
# acts on what is missing. Used by "make test", "make demo" and .ci/run.
set -euo pipefail

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup: not root and no sudo; install haproxy, gcc and docker.io yourself" >&2
  fi
fi

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v gcc >/dev/null || need+=(gcc)                  # go test -race needs cgo
command -v promtool >/dev/null || need+=(prometheus)      # promtool checks of examples/
docker_ok() { docker info >/dev/null 2>&1 || curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; }
if ! docker_ok && ! command -v dockerd >/dev/null; then need+=(docker.io); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The prometheus package starts a server we do not want.
  if [[ " ${need[*]} " == *" prometheus "* ]]; then $sudo systemctl disable --now prometheus >/dev/null 2>&1 || $sudo pkill -x prometheus || true; fi
fi

if ! docker_ok; then
  echo "setup: no Docker engine answers; starting dockerd (log: /tmp/dockerd.log)"
  $sudo sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker_ok && break; sleep 0.5; done
  docker_ok || { echo "setup: dockerd did not come up:" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi
echo "setup: $(haproxy -v | head -1 | cut -d' ' -f1-3), Docker engine answering, $(go version | cut -d' ' -f3)"
