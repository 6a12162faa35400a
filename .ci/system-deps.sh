#!/usr/bin/env bash
# Install the real services the tests start, where they are missing (Debian).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v promtool >/dev/null || need+=(prometheus)  # promtool: the chart's alert rules
if [ -n "${IMAGE:-}" ]; then  # make image-test: build and run images without a daemon
  command -v podman >/dev/null || need+=(podman)
  command -v buildah >/dev/null || need+=(buildah)
  command -v runc >/dev/null || need+=(runc)
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
