#!/bin/sh
# keel bench, peer measured boot: prints the figures as `peer: <ms>ms <stage> [detail]` lines (keel's timeline
# format, milliseconds since kernel start) from systemd's and Docker's own records of this boot. With `peer.memory`
# on the kernel command line it then starts the loggers and prints `peer: pss <pid> <ppid> <kB> <comm>` for
# every process.
set -u
touch /run/peer-reported
. /peer/containers.sh
# Wait for the boot transaction to end (event driven, no polling), so startup is over before docker is called.
state=$(systemctl is-system-running --wait)

# Docker records times on the wall clock; the offset to time since boot is read between two uptime samples.
read -r up1 _ < /proc/uptime
now_ns=$(date +%s%N)
read -r up2 _ < /proc/uptime
cs() { echo "${1%.*}${1#*.}"; }
boot_ns=$((now_ns - ($(cs "$up1") + $(cs "$up2")) * 5000000))
offset_err_ms=$((($(cs "$up2") - $(cs "$up1")) * 5 + 5))
wall_ms() { echo $((($(date -d "$1" +%s%N) - boot_ns) / 1000000)); }
mono_ms() { echo $(($1 / 1000)); }

echo "peer: $(mono_ms "$(systemctl show -P UserspaceTimestampMonotonic)")ms systemd-started"
echo "peer: $(mono_ms "$(systemctl show -P ActiveEnterTimestampMonotonic networking.service)")ms network eth0 $(ip -4 -o addr show eth0 | awk '{print $4}')"
echo "peer: $(mono_ms "$(systemctl show -P ActiveEnterTimestampMonotonic containerd.service)")ms containerd-ready"
echo "peer: $(mono_ms "$(systemctl show -P ActiveEnterTimestampMonotonic docker.service)")ms docker-ready"
echo "peer: $(mono_ms "$(systemctl show -P FinishTimestampMonotonic)")ms ready systemd startup finished, $state"
set -- $(docker inspect -f '{{.State.StartedAt}} {{.LogPath}}' hello)
echo "peer: $(wall_ms "$1")ms container-started hello (docker StartedAt, ±${offset_err_ms} ms)"
# The first line dockerd's log copier read in this boot (it stamps each line as it reads it from the shim).
boot_s=$((boot_ns / 1000000000))
sed -n 's/.*"time":"\([^"]*\)".*/\1/p' "$2" | while read -r stamp; do
  if [ "$(date -d "$stamp" +%s)" -ge "$boot_s" ]; then
    echo "peer: $(wall_ms "$stamp")ms container-output hello (docker json-file time, ±${offset_err_ms} ms)"
    break
  fi
done

if grep -qw peer.memory /proc/cmdline; then
  names=$(i=1; while [ "$i" -le "$LOGGERS" ]; do echo "log$i"; i=$((i + 1)); done)
  # shellcheck disable=SC2086
  docker start $names > /dev/null
  until [ "$(docker ps -q | wc -l)" -ge $((LOGGERS + 1)) ]; do sleep 5; done
  echo "peer: $LOGGERS loggers running"
  # Let the daemons settle with every container logging, as keel's meter does.
  sleep 30
  for dir in /proc/[0-9]*; do
    pss=$(sed -n 's/^Pss: *\([0-9]*\) kB/\1/p' "$dir/smaps_rollup" 2>/dev/null)
    [ -n "$pss" ] || continue
    ppid=$(sed -n 's/^PPid:\t*//p' "$dir/status")
    echo "peer: pss ${dir#/proc/} $ppid $pss $(cat "$dir/comm")"
  done
fi
echo "peer: done"
