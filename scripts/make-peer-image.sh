#!/usr/bin/env bash
# Builds the peer host `make bench` measures keel against: Debian 12 (minbase) + systemd + Docker (Debian's
# docker.io) on an ext4 root, plus a small busybox initramfs that loads the kernel modules, mounts the root and
# execs systemd. Same kernel as keel (its modules come from keel-build's kernel cache). No loop devices.
#
# Usage: scripts/make-peer-image.sh OUT_DIR KERNEL_CACHE_DIR BUSYBOX_OCI_TAR CONTAINERS_SH
#   KERNEL_CACHE_DIR is keel-build's extracted kernel package (build/cache/linux-image-*/), with modules.dep.
#   BUSYBOX_OCI_TAR is keel's preloaded image (build/images/busybox.tar), converted here for `docker load`.
#   CONTAINERS_SH (written by the bench) sets the containers' commands: HELLO_CMD, LOGGER_CMD, LOGGERS.
# Writes OUT_DIR/{root.img,initrd.img,cmdline,rootfs-apparent-bytes,rootfs-allocated-bytes,packages}.
# The bench boots root.img once to prepare it (docker load, containers created) before measuring copies of it.
set -euo pipefail
out=$1
kernel_dir=$(realpath "$2")
busybox_tar=$(realpath "$3")
containers_sh=$(realpath "$4")
here=$(dirname "$(realpath "$0")")
files="$here/peer"

mkdir -p "$out"
work=$(mktemp -d "$out/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

# Debian's mirror, with the point-release and security updates a fresh install gets.
mirror=http://deb.debian.org/debian
mmdebstrap --variant=minbase --mode=root --format=directory \
  --include=systemd,systemd-sysv,docker.io,iproute2,apparmor,ifupdown,isc-dhcp-client \
  bookworm "$root" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"

# Userland size as installed, before the bench's payload is added: what a user of this host carries.
du -s --apparent-size -B1 "$root" | cut -f1 > "$work/rootfs-apparent-bytes"
du -s -B1 "$root" | cut -f1 > "$work/rootfs-allocated-bytes"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$work/packages"

# No udev here: the serial getty would wait 90 s for dev-ttyS0.device, and getty-static is Debian's no-dbus
# fallback that starts agettys on tty2-6. Everything else stays as shipped.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty-static.service"
echo peer > "$root/etc/hostname"
# The initramfs mounts the root read-write; there is nothing else to mount.
: > "$root/etc/fstab"
# DHCP on the NIC as Debian's installer configures it (ifupdown + dhclient), as keel does DHCP on eth0.
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' > "$root/etc/network/interfaces"

# The same image keel preloads, in the format Docker 20.10's `docker load` reads (same layers and config).
mkdir -p "$root/peer"
skopeo copy --quiet "oci-archive:$busybox_tar" "docker-archive:$root/peer/busybox.tar:keel/busybox:latest"
install -m 0755 "$files/prepare.sh" "$files/report.sh" "$root/peer/"
install -m 0644 "$containers_sh" "$root/peer/containers.sh"
install -m 0644 "$files/peer-prepare.service" "$files/peer-report.service" "$root/etc/systemd/system/"
ln -s ../peer-prepare.service "$root/etc/systemd/system/multi-user.target.wants/peer-prepare.service"
touch "$root/peer/prepare-pending"

mke2fs -q -F -t ext4 -L peerroot -d "$root" "$work/root.img" 2G

# The initramfs: static busybox, the modules (dependencies first, as modprobe orders them) and /init.
initrd="$work/initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,root,lib/modules}
cp /bin/busybox "$initrd/bin/busybox"
for applet in sh mount insmod switch_root cat sleep mkdir; do ln -s busybox "$initrd/bin/$applet"; done
version=$(ls "$kernel_dir/lib/modules")
modules="virtio_pci virtio_blk virtio_net ext4 autofs4 overlay veth bridge br_netfilter nft_compat nft_chain_nat
  xt_MASQUERADE xt_conntrack xt_addrtype xt_nat xt_tcpudp nf_conntrack_netlink xfrm_user"
# shellcheck disable=SC2086
modprobe -d "$kernel_dir" -S "$version" --show-depends -a $modules | awk '{print $2}' | awk '!seen[$0]++' |
  while read -r ko; do
    cp "$ko" "$initrd/lib/modules/"
    basename "$ko" >> "$initrd/lib/modules/order"
  done
install -m 0755 "$files/init" "$initrd/init"
(cd "$initrd" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible --owner=0:0 | gzip -n -1) \
  > "$work/initrd.img"
echo "console=ttyS0 panic=-1" > "$work/cmdline"

for f in root.img initrd.img cmdline rootfs-apparent-bytes rootfs-allocated-bytes packages; do
  mv "$work/$f" "$out/$f"
done
echo "peer image: $out"
