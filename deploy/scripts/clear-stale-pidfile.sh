#!/usr/bin/env bash
# clear-stale-pidfile.sh FILE NAME: removes FILE unless the process it names is NAME.
#
# A machine restored from a snapshot (or rebooted without a tmpfs /run) keeps dockerd's
# and containerd's pid files but not their processes. By the time dockerd starts again
# the old pid may belong to anything (a kernel worker, in the CI run that failed on this),
# and dockerd then refuses to start: "pid file found, ensure docker is not running".
# dockerd only asks whether the pid is alive; asking what the process is tells a live
# daemon from a reused pid.
set -euo pipefail

file=${1:?usage: clear-stale-pidfile.sh FILE NAME}
name=${2:?usage: clear-stale-pidfile.sh FILE NAME}

[ -e "$file" ] || exit 0
pid=$(tr -dc '0-9' <"$file")
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    exit 0
fi
echo "clear-stale-pidfile: removing $file (pid '${pid}' is not a running $name)" >&2
rm -f "$file"
