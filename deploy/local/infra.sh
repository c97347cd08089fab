#!/usr/bin/env bash
# Local infrastructure (PostgreSQL, RabbitMQ, Redis, SMTP sink) for dev and tests: up|down|status|start|stop|kill|restart.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: infra.sh up | down | status | start <c> | stop <c> | kill <c> | restart <c> | env
       components <c>: postgres rabbitmq redis smtp

  up        start every component that is not already running, wait until all
            answer, then write $NOTIFY_LOCAL_DIR/env (export lines to source)
  down      stop everything this script started (SIGTERM, wait, SIGKILL), epmd included
  status    show each component; exit 0 if all are running, 3 otherwise
  start     start one component and wait until it answers (no-op if running)
  stop      stop one component gracefully (stop rabbitmq also stops our epmd)
  kill      SIGKILL one component (crash simulation; rabbitmq: the beam only, epmd stays)
  restart   stop + start
  env       (re)write the env file and print its path

Settings (environment, with defaults):
  NOTIFY_LOCAL_DIR=<repo>/.local/dev  NOTIFY_PG_PORT=5432  NOTIFY_AMQP_PORT=5672
  NOTIFY_RABBIT_MGMT_PORT=15672  NOTIFY_RABBIT_DIST_PORT=25672  NOTIFY_EPMD_PORT=4369
  NOTIFY_REDIS_PORT=6379  NOTIFY_SMTP_PORT=2525  NOTIFY_SMTP_CONTROL_PORT=<smtp port + 1>
EOF
}

# ---------------------------------------------------------------- settings

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

PG_PORT=${NOTIFY_PG_PORT:-5432}
AMQP_PORT=${NOTIFY_AMQP_PORT:-5672}
MGMT_PORT=${NOTIFY_RABBIT_MGMT_PORT:-15672}
DIST_PORT=${NOTIFY_RABBIT_DIST_PORT:-25672}
EPMD_PORT=${NOTIFY_EPMD_PORT:-4369}
REDIS_PORT=${NOTIFY_REDIS_PORT:-6379}
SMTP_PORT=${NOTIFY_SMTP_PORT:-2525}
SMTP_CONTROL_PORT=${NOTIFY_SMTP_CONTROL_PORT:-$((SMTP_PORT + 1))}

COMPONENTS=(postgres rabbitmq redis smtp)
START_TIMEOUT=20           # seconds, per component
RABBIT_START_TIMEOUT=60
PG_START_TIMEOUT=60        # crash recovery after a SIGKILL may replay WAL
STOP_TIMEOUT=30

PG_BIN=${NOTIFY_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
SYSTEM_PYTHON=/usr/bin/python3   # Debian's python: the one the TLS tests' python3-aiosmtpd is importable by

mkdir -p -m 755 "${NOTIFY_LOCAL_DIR:-$REPO_ROOT/.local/dev}"
LOCAL_DIR=$(cd "${NOTIFY_LOCAL_DIR:-$REPO_ROOT/.local/dev}" && pwd)
PID_DIR=$LOCAL_DIR/pids
LOG_DIR=$LOCAL_DIR/logs
PG_DIR=$LOCAL_DIR/postgres
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/run
RABBIT_DIR=$LOCAL_DIR/rabbitmq
RABBIT_NODE=notify-$AMQP_PORT@localhost
REDIS_DIR=$LOCAL_DIR/redis
MAIL_DIR=$LOCAL_DIR/mail
ENV_FILE=$LOCAL_DIR/env

declare -A LAUNCHED_AT=()   # component -> time its launch began (for the ready message)

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- process helpers

# alive PID: the process exists and is not a zombie
alive() {
    local pid=${1:-} state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# cmdline_has PID TEXT: the process' command line contains TEXT
cmdline_has() {
    local args
    args=$(tr "\\0" " " 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ $args == *"$2"* ]]
}

# descendants PID: all descendant PIDs, depth first
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}

# wait_gone TIMEOUT PID...: wait until none of the PIDs is alive
wait_gone() {
    local timeout=$1 start=$SECONDS pid any
    shift
    while :; do
        any=
        for pid in "$@"; do alive "$pid" && any=1; done
        [[ -z $any ]] && return 0
        (( SECONDS - start >= timeout )) && return 1
        sleep 0.2
    done
}

# terminate NAME SIGNAL TIMEOUT PID...: send SIGNAL, wait, then SIGKILL whatever is left
terminate() {
    local name=$1 sig=$2 timeout=$3 pid
    shift 3
    for pid in "$@"; do alive "$pid" && kill "-$sig" "$pid" 2>/dev/null || true; done
    if ! wait_gone "$timeout" "$@"; then
        log "$name did not exit within ${timeout}s after SIG$sig, sending SIGKILL"
        for pid in "$@"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
        wait_gone 10 "$@" || log "warning: $name still alive after SIGKILL: $*"
    fi
}

port_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# port_owner PORT: PID of the process listening on 127.0.0.1:PORT (or any address), if any
port_owner() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# pid_of COMPONENT: the recorded PID if that process is still alive and is what we started
pid_of() {
    local comp=$1 pid pattern
    pid=$(head -n1 "$PID_DIR/$comp.pid" 2>/dev/null || true)
    case $comp in
        postgres) pattern=postgres ;;
        rabbitmq) pattern=beam.smp ;;
        rabbitmq-wrapper) pattern=rabbitmq-server ;;
        epmd) pattern=epmd ;;
        redis) pattern=redis-server ;;
        smtp) pattern=smtp_sink.py ;;
        *) die "unknown pid name $comp" ;;
    esac
    if alive "$pid" && cmdline_has "$pid" "$pattern"; then echo "$pid"; fi
}

# close_inherited_fds: close every fd above 2 (our lock, pipes inherited from CI runners...)
close_inherited_fds() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-"; fi
    done
}

# spawn LOGFILE CMD...: start CMD detached in its own session; its PID ends up in $SPAWNED
spawn() {
    local logfile=$1
    shift
    # the subshell exec()s setsid, which does not fork (a background job is not a process
    # group leader) and exec()s CMD: so $! is the daemon's own PID
    (
        close_inherited_fds
        exec setsid "$@"
    ) </dev/null >>"$logfile" 2>&1 &
    SPAWNED=$!
}

# wait_ready COMPONENT PID TIMEOUT: poll COMPONENT's readiness check until it answers
wait_ready() {
    local comp=$1 pid=$2 timeout=$3 start=$SECONDS
    while ! "ready_$comp"; do
        if ! alive "$pid"; then
            log "$comp (pid $pid) exited during startup; last log lines:"
            tail -n 30 "$(logfile_of "$comp")" >&2 || true
            return 1
        fi
        if (( SECONDS - start >= timeout )); then
            log "$comp did not answer within ${timeout}s; last log lines:"
            tail -n 30 "$(logfile_of "$comp")" >&2 || true
            return 1
        fi
        sleep 0.25
    done
    log "$comp ready (pid $pid)${LAUNCHED_AT[$comp]:+, $(since "${LAUNCHED_AT[$comp]}")s after launch}"
}

logfile_of() {
    case $1 in
        rabbitmq) echo "$LOG_DIR/rabbitmq/$RABBIT_NODE.log" ;;
        *) echo "$LOG_DIR/$1.log" ;;
    esac
}

check_port_free() {
    local comp=$1 port
    shift
    for port in "$@"; do
        if port_in_use "$port"; then
            die "cannot start $comp: port $port is already in use by another process: $(ss -Hltnp "sport = :$port" | head -n1)"
        fi
    done
}

# ---------------------------------------------------------------- postgres

ready_postgres() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

as_postgres() { (cd / && close_inherited_fds && exec runuser -u postgres -- "$@"); }

# postgres must be able to reach its data dir: give o+x to parents that lack it
ensure_traversable() {
    local dir=$1
    while [[ $dir != / ]]; do
        if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
            log "chmod o+x $dir (so the postgres user can reach its data dir)"
            chmod o+x "$dir"
        fi
        dir=$(dirname "$dir")
    done
}

pg_init() {
    [[ -x $PG_BIN/postgres ]] || die "PostgreSQL binaries not found (looked in '$PG_BIN'); run deploy/local/install-deps"
    mkdir -p -m 755 "$PG_DIR"
    install -d -o postgres -g postgres -m 700 "$PG_DATA" "$PG_SOCK"
    ensure_traversable "$PG_DIR"
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
        log "initdb $PG_DATA"
        as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >"$LOG_DIR/postgres-initdb.log" 2>&1 \
            || { cat "$LOG_DIR/postgres-initdb.log" >&2; die "initdb failed"; }
        cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
host    all       all       ::1/128        scram-sha-256
EOF
        echo "include_if_exists = 'notify_local.conf'" >>"$PG_DATA/postgresql.conf"
        chown postgres:postgres "$PG_DATA/pg_hba.conf" "$PG_DATA/postgresql.conf"
    fi
    # A self-signed certificate for 127.0.0.1, so that TLS (NOTIFY_PG_SSLMODE=require or verify-full with
    # NOTIFY_PG_SSLROOTCERT=$PG_DIR/ca.crt) can be used and tested locally; plain connections still work.
    if [[ ! -s $PG_DATA/server.key || ! -s $PG_DIR/ca.crt ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=notify-local-postgres" \
            -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            -keyout "$PG_DATA/server.key" -out "$PG_DATA/server.crt" >"$LOG_DIR/postgres-cert.log" 2>&1 \
            || { cat "$LOG_DIR/postgres-cert.log" >&2; die "making the local PostgreSQL certificate failed"; }
        chown postgres:postgres "$PG_DATA/server.key" "$PG_DATA/server.crt"
        chmod 600 "$PG_DATA/server.key"
        install -m 644 "$PG_DATA/server.crt" "$PG_DIR/ca.crt"
    fi
    # rewritten on every start so that port changes are picked up
    cat >"$PG_DATA/notify_local.conf" <<EOF
# written by deploy/local/infra.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 300
password_encryption = 'scram-sha-256'
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
# A write-heavy queue: checkpoints by time rather than every GiB of WAL (each one makes the next writes of every page
# full-page images), and room for the hot pages of the job tables.
max_wal_size = '8GB'
checkpoint_timeout = '15min'
shared_buffers = '512MB'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
    chown postgres:postgres "$PG_DATA/notify_local.conf"
}

# remove_stale_lock FILE: drop a postgres lock file whose owner is gone. Postgres checks the owner
# with kill(pid, 0), which also succeeds for a zombie, and orphans may stay zombies here for a while.
remove_stale_lock() {
    local file=$1 owner
    [[ -f $file ]] || return 0
    owner=$(head -n1 "$file" 2>/dev/null || true)
    owner=${owner//[!0-9]/}
    if ! { alive "$owner" && cmdline_has "$owner" postgres; }; then
        log "removing stale $(basename "$file") (pid ${owner:-?} is gone)"
        rm -f "$file"
    fi
}

launch_postgres() {
    check_port_free postgres "$PG_PORT"
    pg_init
    remove_stale_lock "$PG_DATA/postmaster.pid"
    remove_stale_lock "$PG_SOCK/.s.PGSQL.$PG_PORT.lock"
    touch "$LOG_DIR/postgres.log"
    chown postgres:postgres "$LOG_DIR/postgres.log"
    # -w: pg_ctl polls until the server accepts connections (or exits, or the deadline passes)
    if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -w -t "$PG_START_TIMEOUT" start >/dev/null; then
        tail -n 30 "$LOG_DIR/postgres.log" >&2
        die "postgres failed to start (log: $LOG_DIR/postgres.log)"
    fi
    head -n1 "$PG_DATA/postmaster.pid" >"$PID_DIR/postgres.pid"
}

after_ready_postgres() {
    # the owner of the databases (migrations; it makes the services' roles); idempotent, also resets its password and
    # flags; pg_monitor: it sees every session in pg_stat_activity, the services' roles included
    local create="DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notify') THEN
            CREATE ROLE notify LOGIN CREATEDB CREATEROLE PASSWORD 'notify';
        END IF;
    END \$\$"
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres \
        -c "$create" -c "ALTER ROLE notify LOGIN CREATEDB CREATEROLE PASSWORD 'notify'" \
        -c "GRANT pg_monitor TO notify" >/dev/null \
        || die "could not create the notify role"
}

stop_postgres() {
    local pid
    pid=$(pid_of postgres)
    if [[ -n $pid ]]; then
        local kids
        kids=$(descendants "$pid")
        # SIGINT = fast shutdown (SIGTERM would wait for every client to disconnect)
        terminate postgres INT "$STOP_TIMEOUT" "$pid"
        # shellcheck disable=SC2086
        [[ -z $kids ]] || terminate "postgres children" KILL 5 $kids
    fi
    rm -f "$PID_DIR/postgres.pid"
}

# ---------------------------------------------------------------- rabbitmq

ready_rabbitmq() {
    curl -fsS -m 3 -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/overview" >/dev/null 2>&1 && port_open "$AMQP_PORT"
}

rabbit_env() {
    export HOME=$RABBIT_DIR/home
    export RABBITMQ_NODENAME=$RABBIT_NODE
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$AMQP_PORT
    export RABBITMQ_DIST_PORT=$DIST_PORT
    export ERL_EPMD_PORT=$EPMD_PORT
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_CRASH_DUMP=$LOG_DIR/rabbitmq/erl_crash.dump
    export RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia
    export RABBITMQ_LOG_BASE=$LOG_DIR/rabbitmq
    export RABBITMQ_PID_FILE=$RABBIT_DIR/beam.pid
    export RABBITMQ_CONF_ENV_FILE=$RABBIT_DIR/rabbitmq-env.conf
    export RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq.conf
    export RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT_DIR/advanced.config
    export RABBITMQ_ENABLED_PLUGINS=rabbitmq_management
    export RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

launch_rabbitmq() {
    [[ -x $RABBIT_SERVER ]] || die "$RABBIT_SERVER not found; run deploy/local/install-deps"
    check_port_free rabbitmq "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT"
    mkdir -p "$RABBIT_DIR/home" "$RABBIT_DIR/mnesia" "$LOG_DIR/rabbitmq"
    : >"$RABBIT_DIR/rabbitmq-env.conf"   # keeps /etc/rabbitmq/rabbitmq-env.conf out
    echo '[rabbitmq_management].' >"$RABBIT_DIR/enabled_plugins"
    cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
# written by deploy/local/infra.sh
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
loopback_users.guest = true
EOF

    # epmd: reuse ours if it survived (e.g. after 'kill rabbitmq'); refuse a foreign one
    local epmd_owner
    record_epmd
    epmd_owner=$(port_owner "$EPMD_PORT")
    if [[ -n $epmd_owner && $epmd_owner != "$(pid_of epmd)" ]]; then
        die "cannot start rabbitmq: port $EPMD_PORT (epmd) is used by pid $epmd_owner, which this script did not start"
    fi

    (cd "$RABBIT_DIR" && rabbit_env && spawn "$LOG_DIR/rabbitmq.stdout.log" "$RABBIT_SERVER" && echo "$SPAWNED" >"$PID_DIR/rabbitmq-wrapper.pid")
    local wrapper start=$SECONDS beam=
    wrapper=$(head -n1 "$PID_DIR/rabbitmq-wrapper.pid")
    # the wrapper script forks one child that exec()s erl -> erlexec -> beam.smp
    while [[ -z $beam ]]; do
        local child
        for child in $(pgrep -P "$wrapper" 2>/dev/null || true); do
            cmdline_has "$child" beam.smp && beam=$child
        done
        if [[ -z $beam ]]; then
            if ! alive "$wrapper" || (( SECONDS - start >= START_TIMEOUT )); then
                tail -n 30 "$LOG_DIR/rabbitmq.stdout.log" >&2 || true
                die "rabbitmq: beam process did not appear"
            fi
            sleep 0.1
        fi
    done
    echo "$beam" >"$PID_DIR/rabbitmq.pid"
}

# record_epmd: remember the epmd listening on our ERL_EPMD_PORT if our beam started it
# (its environment, inherited from the beam, names our node and our mnesia dir)
record_epmd() {
    [[ -z $(pid_of epmd) ]] || return 0
    local epmd env
    epmd=$(port_owner "$EPMD_PORT")
    [[ -n $epmd ]] && cmdline_has "$epmd" epmd || return 0
    env=$(tr '\0' '\n' 2>/dev/null <"/proc/$epmd/environ") || return 0
    if grep -qxF "RABBITMQ_NODENAME=$RABBIT_NODE" <<<"$env" \
        && grep -qxF "RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia" <<<"$env"; then
        echo "$epmd" >"$PID_DIR/epmd.pid"
    fi
}

after_ready_rabbitmq() { record_epmd; }

stop_rabbitmq() {
    local beam wrapper kids
    record_epmd   # in case a start was interrupted before it got to record it
    beam=$(pid_of rabbitmq)
    wrapper=$(pid_of rabbitmq-wrapper)
    if [[ -n $beam ]]; then
        kids=$(descendants "$beam")
        terminate rabbitmq TERM 60 "$beam"
        # shellcheck disable=SC2086
        [[ -z $kids ]] || terminate "rabbitmq children" TERM 5 $kids
    fi
    [[ -z $wrapper ]] || terminate "rabbitmq wrapper" TERM 10 "$wrapper"
    rm -f "$PID_DIR/rabbitmq.pid" "$PID_DIR/rabbitmq-wrapper.pid"
    stop_epmd
}

stop_epmd() {
    local epmd
    epmd=$(pid_of epmd)
    [[ -z $epmd ]] || terminate epmd TERM 10 "$epmd"
    rm -f "$PID_DIR/epmd.pid"
}

# ---------------------------------------------------------------- redis

ready_redis() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

launch_redis() {
    command -v redis-server >/dev/null || die "redis-server not found; run deploy/local/install-deps"
    check_port_free redis "$REDIS_PORT"
    mkdir -p "$REDIS_DIR"
    spawn "$LOG_DIR/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize no \
        --save "" --appendonly no --dir "$REDIS_DIR" --logfile ""
    echo "$SPAWNED" >"$PID_DIR/redis.pid"
}

after_ready_redis() { :; }

stop_redis() {
    local pid
    pid=$(pid_of redis)
    # Asked over its own protocol first: a redis started by a process that blocks SIGTERM for its children (the
    # test runner restarting it in a fault test) inherits that mask and would ignore the signal.
    [[ -z $pid ]] || redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    [[ -z $pid ]] || terminate redis TERM "$STOP_TIMEOUT" "$pid"
    rm -f "$PID_DIR/redis.pid"
}

# ---------------------------------------------------------------- smtp sink

ready_smtp() { port_open "$SMTP_PORT" && port_open "$SMTP_CONTROL_PORT"; }

launch_smtp() {
    # The sink is standard library only (asyncio); the TLS tests' own server is the one that needs aiosmtpd.
    [[ -x $SYSTEM_PYTHON ]] || die "$SYSTEM_PYTHON is missing; run deploy/local/install-deps"
    check_port_free smtp "$SMTP_PORT" "$SMTP_CONTROL_PORT"
    mkdir -p "$MAIL_DIR"
    NOTIFY_SMTP_PORT=$SMTP_PORT NOTIFY_SMTP_CONTROL_PORT=$SMTP_CONTROL_PORT NOTIFY_SMTP_MAILDIR=$MAIL_DIR \
        spawn "$LOG_DIR/smtp.log" "$SYSTEM_PYTHON" -I "$SCRIPT_DIR/smtp_sink.py"
    echo "$SPAWNED" >"$PID_DIR/smtp.pid"
}

after_ready_smtp() { :; }

stop_smtp() {
    local pid
    pid=$(pid_of smtp)
    [[ -z $pid ]] || terminate smtp TERM "$STOP_TIMEOUT" "$pid"
    rm -f "$PID_DIR/smtp.pid"
}

# ---------------------------------------------------------------- generic component actions

timeout_of() {
    case $1 in
        rabbitmq) echo "$RABBIT_START_TIMEOUT" ;;
        postgres) echo "$PG_START_TIMEOUT" ;;
        *) echo "$START_TIMEOUT" ;;
    esac
}

# launch COMPONENT: start it unless it is running already; sets LAUNCHED=1 if it was started
launch() {
    local comp=$1 pid
    LAUNCHED=
    pid=$(pid_of "$comp")
    if [[ -n $pid ]]; then
        if "ready_$comp"; then
            log "$comp already running (pid $pid)"
            [[ $comp != rabbitmq ]] || record_epmd
            return 0
        fi
        # alive but not answering: maybe still starting (another invocation); give it the usual time
        if wait_ready "$comp" "$pid" "$(timeout_of "$comp")"; then return 0; fi
        log "$comp (pid $pid) is not answering; restarting it"
        "stop_$comp"
    fi
    log "starting $comp"
    LAUNCHED_AT[$comp]=$(now)
    "launch_$comp"
    LAUNCHED=1
}

# await COMPONENT: wait until a freshly launched COMPONENT answers
await() {
    local comp=$1 pid
    # the raw recorded PID: right after spawn the process may not have exec()ed its program yet,
    # so pid_of's command line check could still fail
    pid=$(head -n1 "$PID_DIR/$comp.pid" 2>/dev/null || true)
    wait_ready "$comp" "$pid" "$(timeout_of "$comp")" || die "$comp failed to start (logs in $LOG_DIR)"
    "after_ready_$comp"
}

start_component() {
    launch "$1"
    if [[ -n $LAUNCHED ]]; then await "$1"; fi
}

kill_component() {
    local comp=$1 pid kids=
    pid=$(pid_of "$comp")
    if [[ -z $pid ]]; then
        log "$comp is not running"
        return 0
    fi
    # postgres: the whole server dies (like a host crash), so a restart is not blocked by orphans
    if [[ $comp == postgres ]]; then kids=$(descendants "$pid"); fi
    log "SIGKILL $comp (pid $pid${kids:+ and children $(echo $kids)})"
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 10 "$pid" $kids || log "warning: $comp pid $pid still alive after SIGKILL"
    rm -f "$PID_DIR/$comp.pid"
    # the rabbitmq wrapper script exits by itself once the beam is gone; epmd is left alone
}

status() {
    local comp pid state rc=0 ports
    for comp in "${COMPONENTS[@]}"; do
        case $comp in
            postgres) ports="$PG_PORT" ;;
            rabbitmq) ports="amqp $AMQP_PORT, mgmt $MGMT_PORT, dist $DIST_PORT, epmd $EPMD_PORT" ;;
            redis) ports="$REDIS_PORT" ;;
            smtp) ports="$SMTP_PORT, control $SMTP_CONTROL_PORT" ;;
        esac
        pid=$(pid_of "$comp")
        if [[ -z $pid ]]; then
            state=stopped; rc=3
        elif "ready_$comp"; then
            state=running
        else
            state="not answering"; rc=3
        fi
        printf '%-9s %-14s pid %-8s port %s\n' "$comp" "$state" "${pid:--}" "$ports"
    done
    pid=$(pid_of epmd)
    printf '%-9s %-14s pid %-8s port %s\n' epmd "$([[ -n $pid ]] && echo running || echo stopped)" "${pid:--}" "$EPMD_PORT"
    echo "local dir: $LOCAL_DIR"
    [[ -f $ENV_FILE ]] && echo "env file:  $ENV_FILE"
    return $rc
}

write_env() {
    local tmp=$ENV_FILE.tmp.$$ name value
    {
        echo "# written by deploy/local/infra.sh on $(date -Is); source it: . '$ENV_FILE'"
        for name in \
            NOTIFY_LOCAL_DIR="$LOCAL_DIR" \
            NOTIFY_INFRA_SCRIPT="$SCRIPT_PATH" \
            NOTIFY_PG_HOST=127.0.0.1 \
            NOTIFY_PG_PORT="$PG_PORT" \
            NOTIFY_PG_USER=notify \
            NOTIFY_PG_PASSWORD=notify \
            NOTIFY_PG_CA_FILE="$PG_DIR/ca.crt" \
            NOTIFY_AMQP_HOST=127.0.0.1 \
            NOTIFY_AMQP_PORT="$AMQP_PORT" \
            NOTIFY_RABBIT_MGMT_URL="http://127.0.0.1:$MGMT_PORT" \
            NOTIFY_RABBIT_MGMT_PORT="$MGMT_PORT" \
            NOTIFY_RABBIT_DIST_PORT="$DIST_PORT" \
            NOTIFY_EPMD_PORT="$EPMD_PORT" \
            NOTIFY_RABBIT_USER=guest \
            NOTIFY_RABBIT_PASSWORD=guest \
            NOTIFY_REDIS_HOST=127.0.0.1 \
            NOTIFY_REDIS_PORT="$REDIS_PORT" \
            NOTIFY_SMTP_HOST=127.0.0.1 \
            NOTIFY_SMTP_PORT="$SMTP_PORT" \
            NOTIFY_SMTP_CONTROL_PORT="$SMTP_CONTROL_PORT" \
            NOTIFY_SMTP_CONTROL="http://127.0.0.1:$SMTP_CONTROL_PORT" \
            NOTIFY_SMTP_MAILDIR="$MAIL_DIR"; do
            value=${name#*=}
            printf 'export %s=%q\n' "${name%%=*}" "$value"
        done
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

up() {
    local comp t0 pending=()
    t0=$(now)
    # rabbitmq is the slow one: launch it first, start the others meanwhile, then wait for it
    for comp in rabbitmq postgres redis smtp; do
        launch "$comp"
        if [[ -n $LAUNCHED ]]; then
            if [[ $comp == rabbitmq ]]; then pending+=(rabbitmq); else await "$comp"; fi
        fi
    done
    for comp in "${pending[@]}"; do await "$comp"; done
    write_env
    log "all up after $(since "$t0")s; env file: $ENV_FILE"
}

down() {
    local comp
    for comp in smtp redis rabbitmq postgres; do
        log "stopping $comp"
        "stop_$comp"
    done
    log "all stopped"
}

# ---------------------------------------------------------------- main

main() {
    local cmd=${1:-} comp=${2:-}
    case $cmd in
        up | down | status | env) [[ $# -eq 1 ]] || { usage >&2; exit 2; } ;;
        start | stop | kill | restart)
            [[ $# -eq 2 && " ${COMPONENTS[*]} " == *" $comp "* ]] || { usage >&2; exit 2; } ;;
        -h | --help | help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    [[ $(id -u) -eq 0 ]] || die "must run as root (postgres is run via runuser)"

    mkdir -p "$PID_DIR" "$LOG_DIR"
    chmod 755 "$LOCAL_DIR" "$LOG_DIR"
    # one infra.sh at a time per local dir (daemons do not inherit fd 9: see close_inherited_fds)
    exec 9>"$LOCAL_DIR/.infra.lock"
    flock -w 600 9 || die "could not lock $LOCAL_DIR/.infra.lock"

    case $cmd in
        up) up ;;
        down) down ;;
        status) status ;;
        env) write_env; echo "$ENV_FILE" ;;
        start) start_component "$comp" ;;
        stop) log "stopping $comp"; "stop_$comp" ;;
        kill) kill_component "$comp" ;;
        restart) log "stopping $comp"; "stop_$comp"; start_component "$comp" ;;
    esac
}

main "$@"
