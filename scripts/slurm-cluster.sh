#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests of `--executor slurm` (tests/test_slurm.py).
#
#   scripts/slurm-cluster.sh start   # start munge, MariaDB, slurmdbd, slurmctld and slurmd (idempotent)
#   scripts/slurm-cluster.sh stop    # stop what start started (a munged that was running before is left)
#   scripts/slurm-cluster.sh status  # exit 0 when the cluster answers
#
# Needs root. On a machine without them, `start` installs Debian's packages first (apt-get install slurm-wlm
# munge slurmdbd mariadb-server), so that a fresh Debian machine needs nothing but this script.
# Accounting (slurmdbd, on its own MariaDB) is there because submitit learns that a job ended without a
# result (cancelled, timed out, node lost) from `sacct`. Everything the cluster writes lives under
# $HUBBENCH_SLURM_DIR (default /tmp/hubbench-slurm): configuration, state, logs, the database.
set -euo pipefail

DIR=${HUBBENCH_SLURM_DIR:-/tmp/hubbench-slurm}
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF
NODE=$(hostname -s)

PACKAGES="slurm-wlm munge slurmdbd mariadb-server"
PROGRAMS="munged mungekey slurmctld slurmd slurmdbd mariadbd mariadb-install-db mariadb sbatch sacctmgr"

die() { echo "slurm-cluster: $*" >&2; exit 1; }

install() {  # Debian's packages, where a program of theirs is missing (a fresh machine)
  local missing=() exe
  for exe in $PROGRAMS; do command -v "$exe" >/dev/null || missing+=("$exe"); done
  [ ${#missing[@]} = 0 ] && return
  command -v apt-get >/dev/null || die "${missing[*]} not found, and no apt-get to install them: install $PACKAGES"
  echo "slurm-cluster: installing $PACKAGES (${missing[*]} not found); apt's output: $DIR/log/apt.log"
  mkdir -p "$DIR/log"
  # shellcheck disable=SC2086  # one word per package
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES; } >"$DIR/log/apt.log" 2>&1 ||
    die "apt-get could not install $PACKAGES; see $DIR/log/apt.log"
  for exe in $PROGRAMS; do command -v "$exe" >/dev/null || die "$exe still not found after installing $PACKAGES"; done
}

answers() { [ -f "$CONF" ] && sinfo -h -o %T >/dev/null 2>&1 && sacctmgr -n list cluster >/dev/null 2>&1; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "$what did not come up within ${limit}s; see $DIR/log"
}

configure() {
  mkdir -p "$DIR"/{etc,log,state,spool,run,mysql}
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat >"$CONF" <<EOF
ClusterName=hubbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
MpiDefault=none
ReturnToService=2
MinJobAge=30
KillWait=5
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3399
StorageUser=slurm
StoragePass=hubbench
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
}

start() {
  [ "$(id -u)" = 0 ] || die "needs root (to install $PACKAGES where missing, and to run the daemons)"
  install
  if answers; then echo "slurm-cluster: already up ($CONF)"; return; fi
  configure
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  pgrep -x munged >/dev/null || munged --force --pid-file="$DIR/run/munged.pid"  # its pid file: ours to stop
  if [ ! -d "$DIR/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/mysql" >"$DIR/log/mariadb-install.log" 2>&1
  fi
  if [ ! -S "$DIR/run/mysqld.sock" ]; then
    mariadbd --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" --port=3399 \
      --bind-address=127.0.0.1 --pid-file="$DIR/run/mariadb.pid" >"$DIR/log/mariadb.log" 2>&1 &
  fi
  wait_for 60 MariaDB mariadb --socket="$DIR/run/mysqld.sock" -e "select 1"
  mariadb --socket="$DIR/run/mysqld.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'hubbench';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  [ -s "$DIR/run/slurmdbd.pid" ] && kill -0 "$(cat "$DIR/run/slurmdbd.pid")" 2>/dev/null || slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster hubbench >/dev/null 2>&1 || true
  pgrep -f "slurmctld -f $CONF" >/dev/null || slurmctld -f "$CONF"
  # at normal priority: jobs inherit slurmd's niceness, and the tests' time limits are the host's real speed
  pgrep -f "slurmd -f $CONF" >/dev/null || slurmd -f "$CONF"
  wait_for 60 "the node" sh -c "sinfo -h -o %T | grep -Eq '^(idle|mixed|allocated)'"
  echo "slurm-cluster: up; export SLURM_CONF=$CONF"
}

stop() {  # the jobs first (their processes outlive slurmd), then each daemon that start started (its pid file is
  # under $DIR/run), waiting for each to end, so that nothing goes on loading the machine and a start can follow
  local pidfile pid
  if answers; then
    scancel -u "$(id -un)" >/dev/null 2>&1 || true
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
  fi
  for pidfile in slurmd slurmctld slurmdbd mariadb munged; do
    pid=$(cat "$DIR/run/$pidfile.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { kill -9 "$pid" 2>/dev/null; echo "slurm-cluster: $pidfile did not stop within 30 s: killed"; }
    rm -f "$DIR/run/$pidfile.pid"
  done
  echo "slurm-cluster: stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) die "usage: $0 start|stop|status" ;;
esac
