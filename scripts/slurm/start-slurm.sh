#!/usr/bin/env bash
# Start a single-node SLURM cluster (slurmctld + slurmd, slurmdbd on MariaDB
# for accounting, munge for auth) on one Debian 12 machine, as root, without
# systemd. Idempotent: daemons already running (by their pid file) are left
# alone; a changed slurm.conf restarts slurmctld and slurmd. Stop everything
# with scripts/slurm/stop-slurm.sh, which kills by pid file, never by name.
#
#   sudo scripts/slurm/start-slurm.sh            # partition "debug", sacct works
#   ACCOUNTING=none scripts/slurm/start-slurm.sh # no slurmdbd: then run snakemake
#                                                # with --slurm-status-command squeue
#
# Used by tests/slurm/test_slurm_e2e.py; profiles/slurm/config.yaml matches it.
# Why each step is here (no systemd, apt's policy-rc.d, sacct) is in README.md,
# section "Workstation, cluster and GPU models".
set -euo pipefail
ACCOUNTING="${ACCOUNTING:-dbd}"
PARTITION="${PARTITION:-debug}"
CLUSTER="${CLUSTER:-local}"
DBPASS="${DBPASS:-slurmdbpass}"
LOG=/var/log/slurm
H="$(hostname -s)"

say() { echo "[start-slurm] $*"; }
die() { echo "[start-slurm] error: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # WHAT SECONDS CMD...: poll CMD once a second
  local what="$1" n="$2"; shift 2
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "timed out after ${n}s waiting for $what"
}
stop_pid() { # PIDFILE: stop the daemon it names (TERM, then KILL after 30 s)
  local p
  alive "$1" || { rm -f "$1"; return 0; }
  p="$(cat "$1")"; kill "$p"
  for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
  kill -0 "$p" 2>/dev/null && kill -9 "$p"
  rm -f "$1"
}
write_if_changed() { # DEST MODE USER:GROUP < content; status 0 when DEST changed
  local t; t="$(mktemp)"; cat >"$t"
  if [ -f "$1" ] && cmp -s "$t" "$1"; then rm -f "$t"; return 1; fi
  install -D -m "$2" -o "${3%:*}" -g "${3#*:}" "$t" "$1"; rm -f "$t"
}

[ "$(id -u)" = 0 ] || die "run as root (installs packages and starts system daemons)"
case "$ACCOUNTING" in dbd | none) ;; *) die "ACCOUNTING must be dbd or none, not '$ACCOUNTING'" ;; esac
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian"

# --- packages (apt's policy-rc.d keeps them from starting anything) ---------
pkgs=(slurm-wlm munge)
[ "$ACCOUNTING" = dbd ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p /run/munge /run/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG"
chown munge:munge /run/munge
chown slurm:slurm /run/slurm /var/spool/slurmctld "$LOG"

# --- munge: the shared key authenticates every SLURM message ----------------
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
  || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
chown -R munge:munge /etc/munge
chmod 700 /etc/munge
chmod 600 /etc/munge/munge.key
if ! alive /run/munge/munged.pid; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged
  wait_for munged 15 sh -c 'munge -n | unmunge'
fi

# --- slurm.conf: this machine as the only node of one default partition ------
read -r CPUS BOARDS SOCKETS CORES THREADS MEM < <(slurmd -C | awk '/^NodeName/{
  for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
  print v["CPUs"], v["Boards"], v["SocketsPerBoard"], v["CoresPerSocket"], v["ThreadsPerCore"], v["RealMemory"] }')
if [ "$ACCOUNTING" = dbd ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
restart_slurm() {
  say "slurm.conf changed: restarting slurmctld and slurmd"
  stop_pid /run/slurm/slurmd.pid
  stop_pid /run/slurm/slurmctld.pid
}
# MinJobAge=300 keeps finished jobs visible to squeue long enough for
# `--slurm-status-command squeue`; task/affinity needs no cgroups.
write_if_changed /etc/slurm/slurm.conf 644 root:root <<EOF && restart_slurm || true
ClusterName=$CLUSTER
SlurmctldHost=$H(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$ACCT
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$H NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$((MEM * 90 / 100)) State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# --- accounting: MariaDB + slurmdbd, so that sacct reports finished jobs ----
if [ "$ACCOUNTING" = dbd ]; then
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  if ! alive /run/mysqld/mysqld.pid; then
    say "starting mariadbd"
    nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock --skip-networking --innodb-buffer-pool-size=256M \
      --innodb-lock-wait-timeout=900 >>"$LOG/mariadb.log" 2>&1 </dev/null &
    wait_for mariadbd 60 mysqladmin ping
  fi
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  write_if_changed /etc/slurm/slurmdbd.conf 600 slurm:slurm <<EOF && stop_pid /run/slurm/slurmdbd.pid || true
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
  if ! alive /run/slurm/slurmdbd.pid; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd
    wait_for slurmdbd 60 sacctmgr -n -P show cluster
  fi
  sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" \
    || sacctmgr -i add cluster "$CLUSTER" >/dev/null
else
  stop_pid /run/slurm/slurmdbd.pid
fi

# --- controller and node daemon ---------------------------------------------
if ! alive /run/slurm/slurmctld.pid; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
  wait_for slurmctld 60 scontrol ping
fi
if ! alive /run/slurm/slurmd.pid; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi
ready() { sinfo -h -n "$H" -o %t | grep -Eq '^(idle|mix|alloc|comp)'; }
if ! (wait_for "node $H" 30 ready) 2>/dev/null; then
  scontrol update NodeName="$H" State=RESUME
  wait_for "node $H" 30 ready
fi
say "ready: partition $PARTITION on node $H (ACCOUNTING=$ACCOUNTING)"
sinfo
