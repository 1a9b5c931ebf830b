# Sourced by load.sh and soak.sh (from the repository's top folder): a
# temporary folder, servers started in the background, and all of them
# stopped and the folder removed on exit.

work=$(mktemp -d)
cleanup() {
    for pidfile in "$work"/*.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME COMMAND...: starts COMMAND (pinned to the cores in $PIN when
# set, e.g. PIN=0), writes its pid to $work/NAME.pid, and prints its address
# once its `listening on` line appears. Called as $(start ...): the server's
# stdout must not be that pipe, or the substitution would wait for the
# server to exit.
start() {
    local name=$1; shift
    if [ -n "${PIN:-}" ]; then set -- taskset -c "$PIN" "$@"; fi
    # Created first: the background job opens it only when it gets to run.
    : >"$work/$name.err"
    "$@" >/dev/null 2>"$work/$name.err" &
    echo $! >"$work/$name.pid"
    for _ in $(seq 100); do
        # Only a whole line: stderr is unbuffered, so the line may arrive
        # in pieces, and half a port is another port.
        addr=$(sed -n 's/.*listening on https\?:\/\/\([0-9.:]*\)$/\1/p' "$work/$name.err")
        [ -n "$addr" ] && [ -z "$(tail -c1 "$work/$name.err")" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "$(basename "$0"): $name did not start: $(cat "$work/$name.err")" >&2
    exit 1
}

# start_redis: a throwaway redis-server on a free port, saving nothing, on
# core 1 (with the clients, off the servers' core 0); sets $redisdir (its
# folder, pid and log) and $redisport, and returns once it answers PING.
# The caller's EXIT trap stops it: kill "$(cat "$redisdir/pid")".
start_redis() {
    redisdir=$(mktemp -d)
    redisport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    taskset -c 1 redis-server --port "$redisport" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$redisdir" --logfile "$redisdir/log" --daemonize yes --pidfile "$redisdir/pid"
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$redisport" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    echo "load.sh: redis-server did not answer on port $redisport" >&2
    return 1
}
