#!/usr/bin/env bash
# Builds keel's demo and test image, `keel/busybox:latest` (Debian's static busybox, its applets as links, root
# and nobody in /etc/passwd), as an OCI archive with umoci and skopeo. Timestamps come from SOURCE_DATE_EPOCH so
# the same busybox gives the same layer. Usage: scripts/make-busybox-image.sh OUT.tar
set -euo pipefail
out=$1
epoch=${SOURCE_DATE_EPOCH:-1764374400}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$work/oci"
umoci new --image "$work/oci:busybox"
umoci unpack --image "$work/oci:busybox" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
find "$rootfs" -exec touch -h -d "@$epoch" {} +
umoci repack --no-history --image "$work/oci:busybox" "$work/bundle"
umoci config --no-history --image "$work/oci:busybox" --created "$created" \
  --config.env PATH=/bin --config.cmd sh --config.workingdir /
mkdir -p "$(dirname "$out")"
rm -f "$out"
skopeo copy --quiet "oci:$work/oci:busybox" "oci-archive:$out:keel/busybox:latest"
echo "busybox image: $out"
