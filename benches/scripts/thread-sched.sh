#!/usr/bin/env bash
# Per thread of a running process, over an interval: CPU time used and time
# spent runnable but waiting for a CPU, from /proc/<pid>/task/*/schedstat
# (Linux). Usage: thread-sched.sh PID [SECONDS]
set -euo pipefail
pid=$1
secs=${2:-5}
snap() {
    for t in /proc/"$pid"/task/*; do
        echo "$(basename "$t") $(tr ' ' '_' <"$t"/comm) $(cat "$t"/schedstat)"
    done | sort
}
a=$(snap)
sleep "$secs"
b=$(snap)
join <(echo "$a") <(echo "$b") | awk -v s="$secs" '
{
    run = ($7 - $3) / 1e6 / s; wait = ($8 - $4) / 1e6 / s; n = ($9 - $5) / s
    if (run + wait > 0)
        printf "%-20s run %7.1f ms/s  wait %7.1f ms/s  %7.0f slices/s\n", $2, run, wait, n
    tr += run; tw += wait
}
END { printf "%-20s run %7.1f ms/s  wait %7.1f ms/s\n", "total", tr, tw }'
