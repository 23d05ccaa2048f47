#!/usr/bin/env bash
# Makes sure every command and file that `make run`, `make test` and `make bench` use is present and runnable on
# Debian 12 (as root), installing packages until they are, and stops naming what is still missing otherwise.
#
# It checks the commands and files themselves, never the package database: a package can be listed as installed
# while an install of another package removed its files. (Machine images ship qemu-utils from bookworm-backports;
# installing Debian 12's qemu-system-x86 removes it, so qemu-img vanishes after a "successful" install.)
# Quick when everything is there: one probe per command, no apt.
set -euo pipefail

# What each package must provide: a command (run with --version; runnable means it did not fail to start) or a
# file (absolute path). One package may appear on several lines. Debian's essential packages (dpkg, apt,
# util-linux, diffutils: dpkg-deb, apt-get, setpriv, cmp) are always there and not listed.
needs=(
  "qemu-system-x86  qemu-system-x86_64"
  "qemu-utils       qemu-img"
  "ovmf             /usr/share/OVMF/OVMF_CODE.fd"
  "ovmf             /usr/share/OVMF/OVMF_VARS.fd"
  "systemd-boot-efi /usr/lib/systemd/boot/efi/systemd-bootx64.efi"
  "erofs-utils      mkfs.erofs"
  "erofs-utils      fsck.erofs"
  "dosfstools       mkfs.fat"
  "mtools           mcopy"
  "mtools           mmd"
  "mtools           mlabel"
  "fdisk            sfdisk"
  "kmod             depmod"
  "cpio             cpio"
  "e2fsprogs        mke2fs"
  "e2fsprogs        dumpe2fs"
  "musl-tools       musl-gcc"
  "docker-registry  docker-registry"
  "skopeo           skopeo"
  "umoci            umoci"
  "rsyslog          rsyslogd"
  "rsyslog-openssl  /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so"
  "openssl          openssl"
  "runc             runc"
  "busybox-static   /bin/busybox"
  "apache2-utils    htpasswd"
  "xorriso          xorriso"
  "mmdebstrap       mmdebstrap"
  # init's unit tests count a written file's bytes in the page cache with it.
  "util-linux-extra fincore"
  # The tests run the stock docker CLI against keel; only the client is used (see docker_package below).
  "DOCKER_CLI       docker"
)

# The package that brings the `docker` client: Debian's `docker-cli` where the archive has it (the client alone,
# newer Debian), else bookworm's `docker.io` (client and daemon; its services are kept off, see apt_install).
docker_package() {
  if apt-cache show docker-cli >/dev/null 2>&1; then echo docker-cli; else echo docker.io; fi
}

# Prints the packages whose command or file is missing or cannot run, each once.
broken_packages() {
  local line package what status
  declare -A seen=()
  for line in "${needs[@]}"; do
    read -r package what <<<"$line"
    if [[ $what == /* ]]; then
      [ -s "$what" ] && continue
    else
      status=0
      "$what" --version </dev/null >/dev/null 2>&1 || status=$?
      # 126/127: not found, not executable or its libraries are missing; anything else means it ran.
      [ "$status" -lt 126 ] && continue
    fi
    [ -n "${seen[$package]:-}" ] || { seen[$package]=1; echo "$package"; }
  done
}

# Names each command or file that is still missing, with its package.
report_missing() {
  local line package what status
  for line in "${needs[@]}"; do
    read -r package what <<<"$line"
    [ "$package" = DOCKER_CLI ] && package="docker-cli or docker.io"
    if [[ $what == /* ]]; then
      [ -s "$what" ] || echo "  $what (package $package)" >&2
    else
      status=0
      "$what" --version </dev/null >/dev/null 2>&1 || status=$?
      [ "$status" -lt 126 ] || echo "  $what (package $package, exit $status)" >&2
    fi
  done
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # docker-registry, rsyslog and docker.io ship services; tests start their own instances (and never a Docker
  # daemon: keel is the server the docker CLI talks to), so keep the packaged ones off.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  local packages=() package status=0
  for package in "$@"; do
    if [ "$package" = DOCKER_CLI ]; then packages+=("$(docker_package)"); else packages+=("$package"); fi
  done
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null || status=$?
  rm -f /usr/sbin/policy-rc.d
  # policy-rc.d keeps them from starting now; disabled, they stay off after a reboot of a systemd machine too.
  if [[ " ${packages[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  fi
  return "$status"
}

mapfile -t broken < <(broken_packages)
if [ ${#broken[@]} -gt 0 ]; then
  echo "install-deps: missing or not runnable: ${broken[*]}"
  apt-get update -qq
  # First the whole list, then what is still broken: one install can remove another package's files (see above),
  # and the next round puts them back from Debian 12.
  mapfile -t all < <(for line in "${needs[@]}"; do read -r package _ <<<"$line"; echo "$package"; done | sort -u)
  round=("${all[@]}")
  for attempt in 1 2 3; do
    echo "install-deps: apt-get install (round $attempt): ${round[*]}"
    apt_install "${round[@]}" || echo "install-deps: apt-get install failed in round $attempt; checking what is there"
    mapfile -t broken < <(broken_packages)
    [ ${#broken[@]} -eq 0 ] && break
    round=("${broken[@]}")
  done
  if [ ${#broken[@]} -gt 0 ]; then
    echo "install-deps: error: still missing after installing:" >&2
    report_missing
    exit 1
  fi
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "install-deps: error: the Rust target x86_64-unknown-linux-musl is still not installed" >&2
  exit 1
fi
