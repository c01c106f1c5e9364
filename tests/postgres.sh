# Throwaway PostgreSQL server for the tests (the PostgreSQL store's conformance cases).
#
#   source tests/postgres.sh start   # start one, export FRANCIS_TEST_POSTGRES_URL and _CA
#   bash tests/postgres.sh start     # same, but prints the `export` lines instead (eval it)
#   bash tests/postgres.sh status    # is it running? prints its URL
#   bash tests/postgres.sh stop      # stop it and delete its data (idempotent)
#
# The server listens on 127.0.0.1 at a free port, trusts every local connection (it is a
# disposable cluster in a temp dir; never point this at real data) and has a `francis_test`
# database. It also speaks TLS, with a certificate for 127.0.0.1 and localhost from a throwaway
# CA made with openssl; FRANCIS_TEST_POSTGRES_CA is that CA's PEM file (for sslmode=verify-full). If initdb/pg_ctl are not found (PATH, then /usr/lib/postgresql/*/bin) and this runs
# as root, the Debian/Ubuntu `postgresql` package is installed with apt-get. PostgreSQL refuses to
# run as root, so as root the server runs as the `postgres` OS user (created if missing).
#
# State (data dir, port, URL) lives in $FRANCIS_PG_STATE_DIR/state (default:
# ${TMPDIR:-/tmp}/francis-test-postgres-<uid>), which is how `stop` finds the server. Set
# FRANCIS_PG_STATE_DIR to run several independent servers (tests/check.sh does).
# shellcheck shell=bash

_fpg_log() { printf 'postgres.sh: %s\n' "$*" >&2; }

_fpg_state_dir() {
    printf '%s\n' "${FRANCIS_PG_STATE_DIR:-${TMPDIR:-/tmp}/francis-test-postgres-$(id -u)}"
}

# Run a command as the server's OS user: `postgres` when we are root, else ourselves.
_fpg_as_server_user() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

# The directory holding initdb, pg_ctl and postgres: PATH first, then the newest Debian install.
_fpg_find_bindir() {
    local initdb pg_ctl dir
    initdb=$(command -v initdb 2>/dev/null || true)
    pg_ctl=$(command -v pg_ctl 2>/dev/null || true)
    if [ -n "$initdb" ] && [ -n "$pg_ctl" ]; then
        dirname "$pg_ctl"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# A client program (pg_isready, psql): next to the server binaries first, then PATH.
_fpg_find_tool() {
    local bindir=$1 name=$2
    if [ -x "$bindir/$name" ]; then
        printf '%s\n' "$bindir/$name"
    else
        command -v "$name" 2>/dev/null
    fi
}

_fpg_install_server() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            _fpg_log "PostgreSQL server binaries (initdb, pg_ctl) not found, and not root to install them."
            _fpg_log "Install them (e.g. 'apt-get install postgresql') or put them on PATH."
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        _fpg_log "PostgreSQL server binaries not found and apt-get is unavailable; install PostgreSQL."
        return 1
    fi
    _fpg_log "installing the postgresql package with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
}

_fpg_ensure_os_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    id postgres >/dev/null 2>&1 && return 0
    _fpg_log "creating the postgres OS user"
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres
    else
        adduser --system --group --no-create-home --home /nonexistent postgres >&2
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
_fpg_free_port() {
    local port i
    if command -v python3 >/dev/null 2>&1; then
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null) && [ -n "$port" ] && { printf '%s\n' "$port"; return 0; }
    fi
    for i in $(seq 1 100); do
        port=$(shuf -i 20000-60999 -n 1)
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

# Load the state file into FPG_* variables; fails if there is none.
_fpg_load_state() {
    local state
    state="$(_fpg_state_dir)/state"
    [ -f "$state" ] || return 1
    FPG_DIR=$(sed -n 's/^dir=//p' "$state")
    FPG_PORT=$(sed -n 's/^port=//p' "$state")
    FPG_BINDIR=$(sed -n 's/^bindir=//p' "$state")
    FPG_URL=$(sed -n 's/^url=//p' "$state")
    FPG_CA=$(sed -n 's/^ca=//p' "$state")
    [ -n "$FPG_DIR" ] && [ -n "$FPG_PORT" ] && [ -n "$FPG_BINDIR" ] && [ -n "$FPG_URL" ]
}

_fpg_is_ready() {
    local bindir=$1 port=$2 isready
    isready=$(_fpg_find_tool "$bindir" pg_isready) || return 1
    "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null 2>&1
}

# A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it, in $1/tls.
_fpg_make_tls() {
    local dir=$1 tls=$1/tls
    command -v openssl >/dev/null 2>&1 || {
        _fpg_log "openssl not found; install it (e.g. 'apt-get install openssl')"
        return 1
    }
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=francis test PostgreSQL CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1 || return 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1 \
        || return 1
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 7 -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1 \
        || return 1
    rm -f "$tls/ca.key" "$tls/server.csr"
    chmod 600 "$tls/server.key"
    chmod 644 "$tls/ca.pem"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$tls"
    return 0
}

_fpg_stop() {
    local state_dir pid
    state_dir=$(_fpg_state_dir)
    if ! _fpg_load_state; then
        _fpg_log "no test server recorded in $state_dir; nothing to stop"
        rm -rf "$state_dir"
        return 0
    fi
    if [ -f "$FPG_DIR/data/postmaster.pid" ]; then
        (cd "$FPG_DIR" && _fpg_as_server_user "$FPG_BINDIR/pg_ctl" -D "$FPG_DIR/data" \
            -m fast -w -t 30 stop) >/dev/null 2>&1 || true
        if [ -f "$FPG_DIR/data/postmaster.pid" ]; then
            pid=$(head -n 1 "$FPG_DIR/data/postmaster.pid" 2>/dev/null || true)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                _fpg_log "pg_ctl stop failed; killing postmaster $pid"
                kill -9 "$pid" 2>/dev/null || true
                sleep 1
            fi
        fi
    fi
    case "$FPG_DIR" in
        */francis-pg.*) rm -rf "$FPG_DIR" ;;
        *) _fpg_log "not deleting unexpected data dir $FPG_DIR" ;;
    esac
    rm -rf "$state_dir"
    _fpg_log "stopped the test server on port $FPG_PORT"
}

# Start a server (or reuse the recorded one if it still answers) and print its URL on stdout.
_fpg_start() {
    local state_dir bindir base dir port url attempt psql i
    state_dir=$(_fpg_state_dir)
    if _fpg_load_state; then
        if _fpg_is_ready "$FPG_BINDIR" "$FPG_PORT"; then
            _fpg_log "reusing the running test server on port $FPG_PORT"
            printf '%s\n' "$FPG_URL"
            return 0
        fi
        _fpg_log "the recorded test server is gone; cleaning up and starting a new one"
        _fpg_stop
    fi

    if ! bindir=$(_fpg_find_bindir); then
        _fpg_install_server
        bindir=$(_fpg_find_bindir) || {
            _fpg_log "PostgreSQL server binaries still not found after installing"
            return 1
        }
    fi
    _fpg_ensure_os_user

    # The data dir must be reachable by the postgres user, so as root it goes under /tmp.
    base=${TMPDIR:-/tmp}
    [ "$(id -u)" -eq 0 ] && base=/tmp
    dir=$(mktemp -d "$base/francis-pg.XXXXXX")
    mkdir -p "$dir/socket"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    chmod 700 "$dir"
    mkdir -p "$state_dir"
    printf 'dir=%s\nport=\nbindir=%s\nurl=\n' "$dir" "$bindir" >"$state_dir/state"

    if ! _fpg_make_tls "$dir"; then
        _fpg_log "making the test server's TLS certificate failed"
        rm -rf "$dir" "$state_dir"
        return 1
    fi

    _fpg_log "initdb in $dir/data (binaries: $bindir)"
    if ! (cd "$dir" && _fpg_as_server_user "$bindir/initdb" -D "$dir/data" -U postgres \
        --auth=trust --encoding=UTF8 --locale=C --no-sync) >"$dir/initdb.log" 2>&1; then
        _fpg_log "initdb failed:"
        cat "$dir/initdb.log" >&2
        rm -rf "$dir" "$state_dir"
        return 1
    fi

    for attempt in 1 2 3 4 5; do
        port=$(_fpg_free_port) || { _fpg_log "no free port found"; break; }
        if (cd "$dir" && _fpg_as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
            -w -t 30 -o "-c listen_addresses=127.0.0.1 -c port=$port \
-c unix_socket_directories=$dir/socket -c max_connections=300 \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key" start) >/dev/null 2>&1; then
            break
        fi
        _fpg_log "start on port $port failed (attempt $attempt)"
        port=
    done
    if [ -z "${port:-}" ]; then
        _fpg_log "could not start the server; its log:"
        tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
        printf 'dir=%s\nport=0\nbindir=%s\nurl=none\n' "$dir" "$bindir" >"$state_dir/state"
        _fpg_stop
        return 1
    fi
    url="postgres://postgres@127.0.0.1:$port/francis_test"
    printf 'dir=%s\nport=%s\nbindir=%s\nurl=%s\nca=%s\n' "$dir" "$port" "$bindir" "$url" \
        "$dir/tls/ca.pem" >"$state_dir/state"

    # Bounded wait until it accepts TCP connections (pg_ctl -w normally did this already).
    for i in $(seq 1 60); do
        _fpg_is_ready "$bindir" "$port" && break
        if [ "$i" -eq 60 ]; then
            _fpg_log "the server did not become ready within 30 s; its log:"
            tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
            _fpg_stop
            return 1
        fi
        sleep 0.5
    done

    psql=$(_fpg_find_tool "$bindir" psql) || { _fpg_log "psql not found"; _fpg_stop; return 1; }
    if ! "$psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c 'CREATE DATABASE francis_test' >/dev/null; then
        _fpg_log "creating the francis_test database failed"
        _fpg_stop
        return 1
    fi
    _fpg_log "test server ready: $url (stop it with: bash tests/postgres.sh stop)"
    printf '%s\n' "$url"
}

_fpg_main() {
    local url
    case "${1:-}" in
        start)
            url=$( set -euo pipefail; _fpg_start ) || return 1
            export FRANCIS_TEST_POSTGRES_URL="$url"
            FRANCIS_TEST_POSTGRES_CA=$( _fpg_load_state && printf '%s\n' "$FPG_CA" )
            export FRANCIS_TEST_POSTGRES_CA
            if [ "$_fpg_sourced" -eq 0 ]; then
                _fpg_log "not sourced, so nothing was exported; run: eval \"\$(bash tests/postgres.sh start)\""
                printf 'export FRANCIS_TEST_POSTGRES_URL=%q\n' "$url"
                printf 'export FRANCIS_TEST_POSTGRES_CA=%q\n' "$FRANCIS_TEST_POSTGRES_CA"
            fi
            ;;
        stop)
            ( set -euo pipefail; _fpg_stop ) || return 1
            if [ "$_fpg_sourced" -eq 1 ]; then
                unset FRANCIS_TEST_POSTGRES_URL FRANCIS_TEST_POSTGRES_CA
            fi
            ;;
        status)
            if ( _fpg_load_state && _fpg_is_ready "$FPG_BINDIR" "$FPG_PORT" ); then
                ( _fpg_load_state && printf '%s\n' "$FPG_URL" )
            else
                _fpg_log "no test server running"
                return 1
            fi
            ;;
        *)
            _fpg_log "usage: source tests/postgres.sh start | bash tests/postgres.sh stop | status"
            return 2
            ;;
    esac
}

_fpg_sourced=0
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    _fpg_sourced=1
fi

if [ "$_fpg_sourced" -eq 1 ]; then
    _fpg_main "$@"
    return $?
else
    _fpg_main "$@"
    exit $?
fi
