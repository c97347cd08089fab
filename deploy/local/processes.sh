# Sourced by up, down, bench, gateway-bench, publisher-bench, relay-bench, worker-bench and wrk-bench: the processes deploy/local/up started, each known by its PID
# file in $DIR/pids (DIR must be set).

# alive NAME: its process is running.
alive() { [[ -s $DIR/pids/$1.pid ]] && kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }

# bench_up NAME: deploy/local/up, quietly, for the bench script NAME. up ends by watching a demo email arrive, which
# a backlog earlier runs left can delay past its wait; the processes run all the same, so that alone does not stop a
# bench. It runs in a clean environment that keeps only which stack (its directory and ports, from $DIR/env) and which
# binary (NOTIFY_BIN) and, when set, the rate limits (wrk-bench turns them off) and the gateway's group commit: a bench of a stack of its own (the CI smoke, deploy/local/bench-smoke) restores that one.
bench_up() {
    local name vars=()
    for name in PATH HOME NOTIFY_LOCAL_DIR NOTIFY_BIN NOTIFY_PG_PORT NOTIFY_AMQP_PORT NOTIFY_RABBIT_MGMT_PORT NOTIFY_RABBIT_DIST_PORT \
        NOTIFY_EPMD_PORT NOTIFY_REDIS_PORT NOTIFY_SMTP_PORT NOTIFY_SMTP_CONTROL_PORT NOTIFY_RATE_LIMIT_PER_KEY NOTIFY_RATE_LIMIT_PER_USER \
        NOTIFY_GATEWAY_COMMITS_IN_FLIGHT NOTIFY_GATEWAY_COMMIT_BATCH NOTIFY_SQL_DIR; do
        if [[ -n ${!name:-} ]]; then vars+=("$name=${!name}"); fi
    done
    env -i "${vars[@]}" NOTIFY_RELAY_PUBLISHER="${NOTIFY_RELAY_PUBLISHER:-http}" bash -c 'deploy/local/up' >/dev/null \
        || echo "[$1] deploy/local/up reported a problem (above); going on" >&2
}

# bench_lock NAME: one bench at a time on a stack. Each bench stops and restarts some of its processes; a second one
# started meanwhile restarts them under the first (once it left a second email worker, outside the PID files, draining
# the queue of later runs). The lock is a directory with the PID of the bench holding it, held while that process
# lives: a bench that ended however it ended holds nothing. A bench run by a bench (publisher-bench runs bench) shares
# its lock.
bench_lock() {
    local lock=$DIR/bench.lock holder
    [[ ${NOTIFY_BENCH_LOCKED:-} == "$DIR" ]] && return 0
    if ! mkdir "$lock" 2>/dev/null; then
        holder=$(cat "$lock/pid" 2>/dev/null || true)
        if [[ -n $holder ]] && kill -0 "$holder" 2>/dev/null; then
            echo "[$1] another bench (PID $holder: $(tr '\0' ' ' </proc/"$holder"/cmdline 2>/dev/null)) is running on $DIR; wait for it to end" >&2
            exit 1
        fi
        rm -rf "$lock"
        mkdir "$lock" || { echo "[$1] $lock: taken meanwhile; try again" >&2; exit 1; }
    fi
    echo $$ >"$lock/pid"
    export NOTIFY_BENCH_LOCKED=$DIR
}

# stop_process NAME: SIGTERM, up to 15 s to finish its work, then SIGKILL. Prints the PID it stopped, nothing when
# none was running.
stop_process() {
    local pid
    alive "$1" || return 0
    pid=$(cat "$DIR/pids/$1.pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "$pid"
}

# bench_binary NOTIFY: the load generator notify-bench beside the notify binary NOTIFY (a build of its own, not part
# of the production binary); beside the release build it is built first (quick when up to date).
bench_binary() {
    local dir
    dir=$(dirname "$1")
    if [[ $(basename "$dir") == release ]]; then swift build -c release --product notify-bench >&2; fi
    echo "$dir/notify-bench"
}

# cpu_ticks: utime+stime of every process of the stack with its direct children (PostgreSQL's backends), "name ticks"
# per line.
cpu_ticks() {
    local file
    # Processes may end while /proc is read: cat skips those.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } \
        | awk 'FNR == NR { names[$2] = $1; next }
               { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
                 ticks = f[12] + f[13]
                 if (pid in names) sum[names[pid]] += ticks; else if (f[2] in names) sum[names[f[2]]] += ticks }
               END { for (n in sum) print n, sum[n] }' \
            <(for file in "$DIR"/pids/*.pid; do printf '%s %s\n' "$(basename "$file" .pid)" "$(head -n1 "$file")"; done) -
}

# wal_counters: the number of notifications and pg_stat_wal's WAL records, bytes and full-page images, on one line
# (read before and after a bench). The counters lag a backend's last second or so: over thousands it is noise.
wal_counters() {
    psql "postgresql://$NOTIFY_PG_USER:$NOTIFY_PG_PASSWORD@$NOTIFY_PG_HOST:$NOTIFY_PG_PORT/notify_notifications" -qAt -F ' ' \
        -c "SELECT (SELECT count(*) FROM notifications), wal_records, wal_bytes, wal_fpi FROM pg_stat_wal"
}

# wal_per_notification LABEL BEFORE AFTER: "WAL per LABEL: … bytes, … records, … full-page images" from two lines of
# wal_counters (nothing when no notification was added).
wal_per_notification() {
    local rows0 records0 bytes0 fpi0 rows1 records1 bytes1 fpi1
    read -r rows0 records0 bytes0 fpi0 <<<"$2"
    read -r rows1 records1 bytes1 fpi1 <<<"$3"
    ((rows1 > rows0)) || return 0
    awk -v label="$1" -v r=$((records1 - records0)) -v b=$((bytes1 - bytes0)) -v f=$((fpi1 - fpi0)) -v n=$((rows1 - rows0)) \
        'BEGIN { printf "WAL per %s: %d bytes, %.1f records, %.3f full-page images (%d notifications)\n", label, b / n, r / n, f / n, n }'
}
