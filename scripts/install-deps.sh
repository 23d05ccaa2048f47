#!/usr/bin/env bash
# Installs what `make run`, `make test` and `make bench` need on a fresh Debian 12 machine (as root).
# Idempotent and quick when everything is already there.
set -euo pipefail

packages=(qemu-system-x86 ovmf systemd-boot-efi erofs-utils dosfstools mtools fdisk kmod cpio e2fsprogs
  musl-tools docker-registry skopeo umoci rsyslog runc busybox-static qemu-utils python3 apache2-utils xorriso)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker-registry and rsyslog ship services; tests start their own instances, so keep the packaged ones off.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi
