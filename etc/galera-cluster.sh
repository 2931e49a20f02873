#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on loopback ports, for trying cogent-sync's central tier on
# one machine (tests, benchmarks, an operator's rehearsal). No containers: Debian's mariadb-server
# and galera-4 packages, one mariadbd process per node, each with its own data directory.
#
#   etc/galera-cluster.sh up        create (first time) and start the three nodes
#   etc/galera-cluster.sh down      stop them (data kept)
#   etc/galera-cluster.sh destroy   stop them and delete their data
#   etc/galera-cluster.sh status    node states and cluster size
#   etc/galera-cluster.sh kill N    SIGKILL node N (1..3), as a crash would
#   etc/galera-cluster.sh start N   start node N again; it rejoins by IST/SST
#   etc/galera-cluster.sh urls      the SQLAlchemy URLs of the nodes, one per line
#
# Settings (environment): GALERA_DIR (default /tmp/cogent-galera), GALERA_PORT (first SQL port,
# default 3311; nodes use 3311..3313), GALERA_GCOMM_PORT (first group-communication port, default
# 4567; each node also uses the next two ports for IST and SST). Everything listens on 127.0.0.1.
# GALERA_USER (default mysql) is the user the servers run as; root may connect from 127.0.0.1
# without a password: this is a rehearsal cluster, not a production one.
set -euo pipefail

DIR=${GALERA_DIR:-/tmp/cogent-galera}
PORT=${GALERA_PORT:-3311}
GCOMM=${GALERA_GCOMM_PORT:-4567}
NODES=3
PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
# The rsync state transfer runs its daemon as the server's user; as root it would drop to
# "nobody" and be refused the data directory, so the nodes run as the mysql user.
RUN_AS=${GALERA_USER:-mysql}

die() { echo "galera-cluster: $*" >&2; exit 1; }

sql_port() { echo $((PORT + $1 - 1)); }
gcomm_port() { echo $((GCOMM + 3 * ($1 - 1))); }
ist_port() { echo $((GCOMM + 3 * ($1 - 1) + 1)); }
sst_port() { echo $((GCOMM + 3 * ($1 - 1) + 2)); }
node_dir() { echo "$DIR/node$1"; }

cluster_address() {
    local addrs=() n
    for n in $(seq 1 $NODES); do addrs+=("127.0.0.1:$(gcomm_port "$n")"); done
    local IFS=,
    echo "gcomm://${addrs[*]}"
}

write_config() {  # write_config N
    local n=$1 d
    d=$(node_dir "$n")
    cat >"$d/my.cnf" <<EOF
[mariadbd]
datadir=$d/data
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
log-error=$d/error.log
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
user=$RUN_AS
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=128M
innodb_flush_log_at_trx_commit=2
max_connections=300
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=cogent-galera
wsrep_cluster_address=$(cluster_address)
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$(gcomm_port "$n")
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$(ist_port "$n");gcache.size=256M"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(sst_port "$n")
EOF
}

client() {  # client N ARGS...
    local n=$1; shift
    mariadb --protocol=tcp -h 127.0.0.1 -P "$(sql_port "$n")" -u root "$@"
}

is_up() { client "$1" -N -e "SELECT 1" >/dev/null 2>&1; }

wait_synced() {  # wait_synced N: up to 120 s for the node to be Synced
    local n=$1 state
    for _ in $(seq 1 240); do
        state=$(client "$n" -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null \
            | awk '{print $2}') || true
        [ "$state" = "Synced" ] && return 0
        sleep 0.5
    done
    die "node $n did not reach Synced within 120 s; see $(node_dir "$n")/error.log"
}

start_node() {  # start_node N [--wsrep-new-cluster]
    local n=$1; shift
    local d
    d=$(node_dir "$n")
    is_up "$n" && { echo "node $n already up on port $(sql_port "$n")"; return 0; }
    rm -f "$d/mysqld.pid"
    # mariadbd detaches nothing by itself: run it in the background with its own session.
    setsid /usr/sbin/mariadbd --defaults-file="$d/my.cnf" "$@" >>"$d/console.log" 2>&1 &
    wait_synced "$n"
    echo "node $n up on 127.0.0.1:$(sql_port "$n")"
}

init_node() {  # init_node N: a fresh data directory with root allowed from 127.0.0.1
    local n=$1 d
    d=$(node_dir "$n")
    mkdir -p "$d"
    write_config "$n"
    chown -R "$RUN_AS" "$DIR" 2>/dev/null || true
    if [ ! -d "$d/data/mysql" ]; then
        mariadb-install-db --defaults-file="$d/my.cnf" --user="$RUN_AS" \
            --auth-root-authentication-method=normal --skip-test-db >"$d/install.log" 2>&1 || die "mariadb-install-db failed: $d/install.log"
    fi
}

up() {
    [ -f "$PROVIDER" ] || die "no Galera provider at $PROVIDER: apt-get install galera-4"
    command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] \
        || die "mariadbd not found: apt-get install mariadb-server"
    local n
    for n in $(seq 1 $NODES); do init_node "$n"; done
    if ! is_up 1 && ! is_up 2 && ! is_up 3; then
        # Bootstrapping: node 1 must be safe to bootstrap from (it was the last to stop).
        sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$(node_dir 1)/data/grastate.dat" \
            2>/dev/null || true
        start_node 1 --wsrep-new-cluster
        client 1 -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
            GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" >/dev/null 2>&1 || true
    fi
    for n in $(seq 1 $NODES); do start_node "$n"; done
    status
}

stop_node() {  # stop_node N: a clean shutdown
    local n=$1 d pid
    d=$(node_dir "$n")
    [ -f "$d/mysqld.pid" ] || return 0
    pid=$(cat "$d/mysqld.pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    local n
    # Last node stopped is the one safe to bootstrap from next time: stop 3, 2, then 1.
    for n in $(seq $NODES -1 1); do stop_node "$n"; done
    echo "cluster stopped (data in $DIR)"
}

kill_node() {
    local d
    d=$(node_dir "$1")
    [ -f "$d/mysqld.pid" ] || die "node $1 is not running"
    kill -KILL "$(cat "$d/mysqld.pid")"
    echo "node $1 killed"
}

status() {
    local n size state
    for n in $(seq 1 $NODES); do
        if is_up "$n"; then
            state=$(client "$n" -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" | awk '{print $2}')
            size=$(client "$n" -N -e "SHOW STATUS LIKE 'wsrep_cluster_size'" | awk '{print $2}')
            echo "node $n: 127.0.0.1:$(sql_port "$n") $state, cluster size $size"
        else
            echo "node $n: 127.0.0.1:$(sql_port "$n") down"
        fi
    done
}

urls() {
    local n
    for n in $(seq 1 $NODES); do echo "mysql://root@127.0.0.1:$(sql_port "$n")/"; done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    destroy) down; rm -rf "$DIR"; echo "removed $DIR" ;;
    status) status ;;
    kill) [ -n "${2:-}" ] || die "kill needs a node number (1..$NODES)"; kill_node "$2" ;;
    start) [ -n "${2:-}" ] || die "start needs a node number (1..$NODES)"; start_node "$2" ;;
    urls) urls ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
