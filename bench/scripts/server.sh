# Sourced by the benchmark scripts that drive the release `jubilant-server`
# in its own process: a scratch directory under the checkout (`$work`,
# removed on exit with the server) and `start_server PORT [ARGS...]`, which
# builds the binary, starts it on loopback with its data in `$work/server`
# and sets `$server_pid`. A script with more to tear down defines
# `cleanup_more` before sourcing this.
work=$(mktemp -d -p .)
server_pid=
cleanup() {
    if declare -F cleanup_more >/dev/null; then cleanup_more; fi
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start_server() { # start_server PORT [ARGS...]
    local port=$1
    shift
    cargo build --release --locked -p jubilant-server
    ./target/release/jubilant-server --data-dir "$work/server" --listen "127.0.0.1:$port" "$@" \
        2>"$work/server.log" &
    server_pid=$!
    sleep 1
}
