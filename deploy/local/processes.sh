# Sourced by up, down, gateway-bench, relay-bench and worker-bench: the processes deploy/local/up started, each known by its PID
# file in $DIR/pids (DIR must be set).

# alive NAME: its process is running.
alive() { [[ -s $DIR/pids/$1.pid ]] && kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }

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
