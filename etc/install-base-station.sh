#!/usr/bin/env bash
# Install a cogent-sync base station on Debian / Raspberry Pi OS, from a checkout:
#
#   sudo etc/install-base-station.sh            # the push daemon (base station)
#   sudo etc/install-base-station.sh --server   # also the central REST server
#
# What it does (each step is skipped when already done, so running it again is safe):
#   - Debian's python3-venv if missing;
#   - the system user and group 'cogent' (no login, home /var/lib/cogent);
#   - the code in /opt/cogent-sync (copied from this checkout unless it is that folder)
#     with its virtualenv /opt/cogent-sync/.venv: the base station's dependencies only,
#     or with --server also the server's (FastAPI, uvicorn, psycopg);
#   - /etc/cogent/synchronise.conf (root:cogent 0640, it holds the key) from the sample,
#     with every path absolute under /var/lib/cogent; never overwritten;
#   - /var/lib/cogent (cogent:cogent 0770): database, log, lock and pid;
#   - the systemd unit(s) in /etc/systemd/system, checked with systemd-analyze verify.
# It enables nothing: edit the configuration, then follow docs/OPERATIONS.md.
#
# --prefix DIR installs the same tree under DIR (DIR/opt, DIR/etc, DIR/var), with the
# units' paths pointing there, and touches nothing outside DIR (no user is created, no
# apt-get, no systemctl); tests/test_deploy.py uses it. --user NAME runs the units as
# NAME (default cogent; with --prefix it must already exist).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=""
RUN_USER=cogent
SERVER=0
PYTHON=${PYTHON:-python3}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$(realpath -m "$2"); shift 2 ;;
        --user) RUN_USER=$2; shift 2 ;;
        --server) SERVER=1; shift ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-base-station.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

APP=$PREFIX/opt/cogent-sync
ETC=$PREFIX/etc/cogent
STATE=$PREFIX/var/lib/cogent
UNITS=$PREFIX/etc/systemd/system
say() { echo "install-base-station: $*"; }

if [ -z "$PREFIX" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install-base-station.sh: run it as root (sudo), or with --prefix DIR" >&2
    exit 2
fi

# Python's venv module (Debian ships it separately).
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ -n "$PREFIX" ]; then
        echo "install-base-station.sh: $PYTHON has no venv module: apt-get install python3-venv" >&2
        exit 2
    fi
    say "installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

# The user the daemon runs as.
if ! id "$RUN_USER" >/dev/null 2>&1; then
    if [ -n "$PREFIX" ]; then
        echo "install-base-station.sh: user $RUN_USER does not exist (with --prefix, pass --user)" >&2
        exit 2
    fi
    say "creating the system user $RUN_USER"
    useradd --system --user-group --home-dir /var/lib/cogent --no-create-home \
        --shell /usr/sbin/nologin "$RUN_USER"
fi
RUN_GROUP=$(id -gn "$RUN_USER")

# The code and its virtualenv.
if [ "$SRC" != "$APP" ]; then
    say "copying the code to $APP"
    mkdir -p "$APP"
    tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./var --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache \
        -cf - . | tar -C "$APP" -xf -
fi
if [ ! -x "$APP/.venv/bin/python" ]; then
    say "creating the virtualenv $APP/.venv"
    "$PYTHON" -m venv "$APP/.venv"
fi
WHAT="$APP"
[ "$SERVER" = 1 ] && WHAT="$APP[server]"
say "installing cogent-sync into it ($([ "$SERVER" = 1 ] && echo 'base station and server' || echo 'base station only'))"
"$APP/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$WHAT"

# Configuration (read-only for the daemon) and state.
install -d -m 0755 "$ETC"
install -d -m 0770 "$STATE"
chown "$RUN_USER:$RUN_GROUP" "$STATE" 2>/dev/null || true
if [ ! -e "$ETC/synchronise.conf" ]; then
    say "writing $ETC/synchronise.conf (paths under $STATE); edit localurl and [central]"
    sed -e "s|^localurl = sqlite:///var/cogent-base.db|localurl = sqlite:///$STATE/cogent-base.db|" \
        -e "s|^logfile = var/|logfile = $STATE/|" \
        -e "s|^pidfile = var/|pidfile = $STATE/|" \
        -e "s|^lockfile = var/|lockfile = $STATE/|" \
        "$SRC/synchronise.conf" > "$ETC/synchronise.conf"
    chmod 0640 "$ETC/synchronise.conf"
    chown "root:$RUN_GROUP" "$ETC/synchronise.conf" 2>/dev/null || true
fi
if [ "$SERVER" = 1 ] && [ ! -e "$ETC/rest.env" ]; then
    say "writing $ETC/rest.env; set COGENT_DB_URL in it"
    printf '%s\n' "# The central server's database (read by cogent-rest.service)." \
        "COGENT_DB_URL=mysql://cogent:PASSWORD@localhost/cogent" > "$ETC/rest.env"
    chmod 0640 "$ETC/rest.env"
    chown "root:$RUN_GROUP" "$ETC/rest.env" 2>/dev/null || true
fi

# The units, with this install's paths and user.
install -d -m 0755 "$UNITS"
units=(cogent-restpusher.service)
[ "$SERVER" = 1 ] && units+=(cogent-rest.service)
for unit in "${units[@]}"; do
    sed -e "s|/opt/cogent-sync|$APP|g" -e "s|/etc/cogent|$ETC|g" -e "s|/var/lib/cogent|$STATE|g" \
        -e "s|^User=cogent|User=$RUN_USER|" -e "s|^Group=cogent|Group=$RUN_GROUP|" \
        "$SRC/etc/$unit" > "$UNITS/$unit"
    chmod 0644 "$UNITS/$unit"
    if command -v systemd-analyze >/dev/null 2>&1; then
        systemd-analyze verify "$UNITS/$unit"
    else
        say "systemd-analyze not found: $unit not verified (apt-get install systemd)"
    fi
    say "installed $UNITS/$unit"
done

if [ -z "$PREFIX" ]; then
    command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload || true
    cat <<NEXT
install-base-station: done. Next (docs/OPERATIONS.md):
  1. edit $ETC/synchronise.conf: localurl (the logger's database) and [central] resturl, apikey
  2. sudo -u $RUN_USER $APP/.venv/bin/cogent-push -c $ETC/synchronise.conf migrate
  3. sudo -u $RUN_USER $APP/.venv/bin/cogent-push -c $ETC/synchronise.conf once
  4. systemctl enable --now cogent-restpusher
NEXT
fi
