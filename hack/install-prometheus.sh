#!/usr/bin/env bash
# Prometheus for the test world's metrics: Debian's package (world.py starts its own process with
# its own config, port and data; the package's service is never used). Installed once, quietly;
# `make cluster-up`, `make test` and `make demo` run this first, as does .ci/run. Messages go to
# stderr: `eval "$(make -s cluster-up)"` reads stdout.
set -euo pipefail

if ! command -v prometheus >/dev/null; then
  echo >&2 "[prometheus] installing Debian's prometheus package (the test world's metrics server) ..."
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  install_log="$(mktemp)"
  if ! { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends prometheus
  } >"$install_log" 2>&1 || ! command -v prometheus >/dev/null; then
    echo >&2 "[prometheus] ERROR: installing the 'prometheus' package failed" \
      "(apt-get install -y --no-install-recommends prometheus); the last lines of its output:"
    tail -n 30 "$install_log" >&2
    echo >&2 "[prometheus] install it yourself, or set VP_PROMETHEUS_BIN to a prometheus binary"
    exit 1
  fi
  rm -f "$install_log"
  # Where systemd runs, the package starts its own service on *:9090: not ours, switch it off.
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi
echo "[prometheus] $(prometheus --version 2>&1 | head -n 1)" >&2
