#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the tests, or reuse the one running.
#
#   eval "$(.ci/postgres.sh)"     # start; exports VERTEBRO_TEST_POSTGRES_URL
#   .ci/postgres.sh url           # print the URL of the running server
#   .ci/postgres.sh stop          # stop the server and delete its files
#
# The server listens on 127.0.0.1 only, on a free port, with its data, socket
# and log in a temporary folder ($VERTEBRO_PG_DIR, default
# ${TMPDIR:-/tmp}/vertebro-pg-$UID). It runs as a non-root user: the caller,
# or, when the caller is root, the "postgres" system user ($VERTEBRO_PG_USER;
# created if missing). PostgreSQL is installed with apt-get when no initdb is
# found. Password authentication with a random password; fsync is off (the
# data is disposable).
#
# Standard output carries only the export line; progress goes to standard
# error. The URL is also written to $VERTEBRO_PG_DIR/url (mode 600).
# Running it again while the server is up starts nothing and prints the same
# line, so it is safe to call from every CI run.
set -euo pipefail

state="${VERTEBRO_PG_DIR:-${TMPDIR:-/tmp}/vertebro-pg-$(id -u)}"
database=vertebro_test
role=vertebro

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# -- who runs the server ----------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    server_user="${VERTEBRO_PG_USER:-postgres}"
else
    server_user="$(id -un)"
fi

as_server() {  # run a command as the server user, from a folder it can read
    if [ "$(id -un)" = "$server_user" ]; then
        (cd / && "$@")
    elif command -v runuser >/dev/null; then
        (cd / && runuser -u "$server_user" -- "$@")
    else
        (cd / && setpriv --reuid="$server_user" --regid="$(id -g "$server_user")" --init-groups -- "$@")
    fi
}

find_bindir() {
    local candidate
    candidate="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
        echo "$candidate"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    elif command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
    fi
}

install_postgres() {
    say "installing PostgreSQL with apt-get"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo -n true 2>/dev/null || die "PostgreSQL is not installed and apt-get needs root (or passwordless sudo)"
        sudo="sudo -n"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
}

url_of() {  # the SQLAlchemy URL, with whichever driver the Python here has
    local python="${PYTHON:-python3}" driver=psycopg
    if ! "$python" -c 'import psycopg' 2>/dev/null; then
        if "$python" -c 'import psycopg2' 2>/dev/null; then
            driver=psycopg2
        else
            say "warning: no psycopg driver for $python; install it with: pip install 'psycopg[binary]'"
        fi
    fi
    echo "postgresql+${driver}://${role}:$(cat "$state/password")@127.0.0.1:$(cat "$state/port")/${database}"
}

is_running() {
    [ -f "$state/data/PG_VERSION" ] && [ -f "$state/port" ] \
        && as_server "$bindir/pg_ctl" -D "$state/data" status >/dev/null 2>&1 \
        && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$(cat "$state/port")" 2>/dev/null
}

port_is_free() {  # nothing answers on 127.0.0.1:$1
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

publish() {
    local url
    url="$(url_of)"
    (umask 077 && printf '%s\n' "$url" >"$state/url")
    printf "export VERTEBRO_TEST_POSTGRES_URL='%s'\n" "$url"
}

command="${1:-start}"
bindir="$(find_bindir)"

case "$command" in
stop)
    if [ -n "$bindir" ] && [ -f "$state/data/PG_VERSION" ]; then
        as_server "$bindir/pg_ctl" -D "$state/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$state"
    say "stopped; removed $state"
    exit 0
    ;;
url)
    [ -n "$bindir" ] && is_running || die "no server running (start it with: eval \"\$(.ci/postgres.sh)\")"
    url_of
    exit 0
    ;;
start) ;;
*) die "unknown command $command (start, url, stop)" ;;
esac

if [ -z "$bindir" ]; then
    install_postgres
    bindir="$(find_bindir)"
    [ -n "$bindir" ] || die "apt-get installed PostgreSQL but no initdb was found"
fi

if is_running; then
    say "reusing the server on port $(cat "$state/port") ($state)"
    publish
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && ! id "$server_user" >/dev/null 2>&1; then
    say "creating the system user $server_user"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$server_user"
fi

# -- a fresh cluster (or the files of a stopped one) -------------------------
mkdir -p "$state"
chmod 711 "$state"  # the server user must reach data/ and run/, nobody may list them
if [ ! -f "$state/data/PG_VERSION" ]; then
    rm -rf "$state/data" "$state/run"
    mkdir -m 700 "$state/data" "$state/run"
    chown "$server_user" "$state/data" "$state/run"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/password")
    pwfile="$state/run/initdb-password"
    cp "$state/password" "$pwfile"
    chown "$server_user" "$pwfile"
    say "initdb in $state/data"
    as_server "$bindir/initdb" -D "$state/data" -U "$role" --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale >/dev/null
    rm -f "$pwfile"
fi

port="$(cat "$state/port" 2>/dev/null || echo 55432)"
for attempt in $(seq 1 50); do
    if port_is_free "$port"; then
        if as_server "$bindir/pg_ctl" start -D "$state/data" -l "$state/run/postgres.log" -w -t 60 -o \
            "-c listen_addresses=127.0.0.1 -p $port -k $state/run -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
        then
            break
        fi
        tail -n 5 "$state/run/postgres.log" >&2 || true
    fi
    port=$((port + 1))
    [ "$attempt" -lt 50 ] || die "could not start PostgreSQL (see $state/run/postgres.log)"
done
echo "$port" >"$state/port"

export PGPASSWORD
PGPASSWORD="$(cat "$state/password")"
if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$role" -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$role" "$database"
fi
say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port as $server_user ($state)"
publish
