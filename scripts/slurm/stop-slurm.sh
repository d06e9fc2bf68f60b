#!/usr/bin/env bash
# Stop the daemons that scripts/slurm/start-slurm.sh started, by pid file
# (never by process name), node daemon first, munge last. Safe to repeat.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "[stop-slurm] error: run as root" >&2; exit 1; }
for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/slurm/slurmdbd.pid \
  /run/mysqld/mysqld.pid /run/munge/munged.pid; do
  if [ -s "$f" ] && p="$(cat "$f")" && kill -0 "$p" 2>/dev/null; then
    echo "[stop-slurm] stopping pid $p ($f)"
    kill "$p"
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$f"
done
