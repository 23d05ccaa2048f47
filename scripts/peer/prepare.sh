#!/bin/sh
# keel bench, peer preparation boot: loads keel's busybox image into Docker, starts the demo container `hello`
# once (dockerd restarts a `--restart always` container at boot only if it has run before) and creates the
# loggers for the memory boot, then arms peer-report.path on hello's log file and powers off.
# /peer/containers.sh (written by the bench) sets HELLO_CMD, LOGGER_CMD and LOGGERS.
set -eu
. /peer/containers.sh
docker load -i /peer/busybox.tar
# shellcheck disable=SC2086
docker run -d --name hello --restart always --memory 32m --init keel/busybox sh -c "$HELLO_CMD"
i=1
while [ "$i" -le "$LOGGERS" ]; do
  docker create --name "log$i" --memory 32m --init keel/busybox sh -c "$LOGGER_CMD" > /dev/null
  i=$((i + 1))
done
log=$(docker inspect -f '{{.LogPath}}' hello)
until grep -q '"log":"hello' "$log"; do sleep 1; done
cat > /etc/systemd/system/peer-report.path <<UNIT
[Unit]
Description=keel bench: start the report on the first write to hello's Docker log

[Path]
PathModified=$log
Unit=peer-report.service

[Install]
WantedBy=paths.target
UNIT
systemctl enable peer-report.path
rm /peer/prepare-pending
echo "peer: prepared: image $(docker image inspect -f '{{.Id}}' keel/busybox), $(docker ps -aq | wc -l) containers"
systemctl poweroff --no-block
