#!/usr/bin/env bash
# Start or stop a single-node SLURM cluster on this machine, for the cluster tests.
#   tests/cluster/slurm.sh up     install (Debian packages) when missing, then start
#   tests/cluster/slurm.sh down   stop it
# State lives under $SLURM_TEST_DIR (default /tmp/sam2flow-slurm). Needs root.
set -euo pipefail

DIR="${SLURM_TEST_DIR:-/tmp/sam2flow-slurm}"
HOST="$(hostname -s)"
CONF_DIR=/etc/slurm

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
    local cpus mem
    cpus="$(nproc)"
    mem="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
    mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=sam2flow-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
GresTypes=gpu
NodeName=$HOST CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
    # A stand-in device file, so that --gpus=1 jobs schedule on a machine without a GPU.
    echo "NodeName=$HOST Name=gpu File=/dev/zero" > "$CONF_DIR/gres.conf"
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
    su -s /bin/sh munge -c /usr/sbin/munged
}

up() {
    install_packages
    write_config
    start_munge
    pkill -x slurmctld 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    sleep 1
    /usr/sbin/slurmctld -c
    /usr/sbin/slurmd
    for _ in $(seq 1 30); do
        if sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed"; then
            echo "SLURM up: $(sinfo -h -o '%P %D %T %G')"
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM did not come up; see $DIR/log" >&2
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    return 1
}

down() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
    echo "SLURM down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
