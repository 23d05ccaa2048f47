#!/usr/bin/env bash
# Boots the image `make image` built, the full chain (OVMF + systemd-boot), with the serial console on this
# terminal, a config drive made from os-image/examples/user-data.toml (USER_DATA=file to change it) and the
# guest's API port 2375 on 127.0.0.1:2375 and the demo web server's port 8080 on 127.0.0.1:8080.
# Usage: scripts/run-qemu.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
image="$build/keel.img"
[ -f "$image" ] || { echo "run-qemu: $image is missing; run 'make image' first" >&2; exit 1; }

state="${KEEL_RUN_DIR:-$build/run}"
mkdir -p "$state"
# The VM writes its own copy: the built image stays as built, and OVMF's variables start fresh each run.
qemu-img create -q -f qcow2 -b "$(realpath "$image")" -F raw "$state/disk.qcow2"
cp /usr/share/OVMF/OVMF_VARS.fd "$state/vars.fd"
# The config drive, from the example user-data (or USER_DATA=file make run).
user_data=${USER_DATA:-os-image/examples/user-data.toml}
"${KEEL_BUILD_BIN:-target/release/keel-build}" config-drive --user-data "$user_data" --out "$state/cidata.img" >/dev/null

cat <<TXT
Booting keel (QEMU, TCG, OVMF + systemd-boot). The console follows; 127.0.0.1:2375 reaches the guest's API (docker -H tcp://127.0.0.1:2375 ps), 127.0.0.1:8080 its web server.
To stop it cleanly: press Ctrl-A then C (QEMU monitor), type  system_powerdown  and Enter.
To stop it hard: Ctrl-A then X.
TXT
exec qemu-system-x86_64 -accel tcg -M q35 -m 1024M -nodefaults -display none \
  -serial mon:stdio \
  -qmp "unix:$state/qmp.sock,server=on,wait=off" \
  -drive if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE.fd,readonly=on \
  -drive "if=pflash,format=raw,unit=1,file=$state/vars.fd" \
  -drive "file=$state/disk.qcow2,format=qcow2,if=none,id=disk0" -device virtio-blk-pci,drive=disk0,bootindex=0 \
  -drive "file=$state/cidata.img,format=raw,if=none,id=cidata" -device virtio-blk-pci,drive=cidata \
  -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2375-:2375,hostfwd=tcp:127.0.0.1:8080-:8080 -device virtio-net-pci,netdev=net0
