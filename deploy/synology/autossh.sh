#!/bin/sh
# Tunnels: one autossh per tunnel in the tunnel list, each in the background
# with its own pid file, gate time 0 (a tunnel started at boot keeps trying
# until the network is there) and monitoring on. This one script is both the
# rc script for boxes with SysV-style rc scripts and the tunnel logic of the
# Synology package (packaging/synology), whose start-stop-status runs it.
#
#   autossh.sh start|stop|restart|status
#
# The tunnel list (default /usr/local/etc/autossh/tunnels.conf):
#
#   # tunnel NAME SSH-ARGUMENTS...   (arguments split on blanks, no quoting)
#   tunnel relay -N -o ServerAliveInterval=30 -R 2200:localhost:22 tunnel@relay.example.net
#   # env NAME VARIABLE=VALUE        (no blanks in the value)
#   env relay AUTOSSH_POLL=60
#
# A line that is neither is reported on stderr with its line number, and the
# other tunnels still start. status exits 0 when every listed tunnel runs,
# 3 when none does and 1 when only some do (DSM's "dead, pid file left").
#
# Settings, from the environment: AUTOSSH (the binary), AUTOSSH_TUNNELS (the
# list), AUTOSSH_RUN_DIR (pid files), AUTOSSH_STOP_WAIT (seconds to wait for
# each tunnel to stop), AUTOSSH_SSH_OPTIONS (options put before every
# tunnel's own, split on blanks).

set -eu

AUTOSSH=${AUTOSSH:-/usr/local/bin/autossh}
TUNNELS=${AUTOSSH_TUNNELS:-/usr/local/etc/autossh/tunnels.conf}
RUN_DIR=${AUTOSSH_RUN_DIR:-/var/run/autossh}
STOP_WAIT=${AUTOSSH_STOP_WAIT:-15}
SSH_OPTIONS=${AUTOSSH_SSH_OPTIONS:-}

# Every line that is not a tunnel, a setting, a comment or blank, with its
# number; a tunnel named twice is reported at its second line.
check() {
    [ -r "$TUNNELS" ] || return 0
    awk -v file="$TUNNELS" '
        /^[ \t]*(#|$)/ { next }
        $1 == "tunnel" && $2 ~ /^[A-Za-z0-9_.-]+$/ && NF >= 3 {
            if ($2 in seen) { printf "%s:%d: tunnel %s is already on line %d\n", file, NR, $2, seen[$2] >"/dev/stderr"; next }
            seen[$2] = NR; next
        }
        $1 == "env" && $2 ~ /^[A-Za-z0-9_.-]+$/ && $3 ~ /^[A-Za-z_][A-Za-z0-9_]*=/ && NF == 3 { next }
        $1 == "tunnel" { printf "%s:%d: a tunnel needs a name (letters, digits, . _ -) and ssh arguments: %s\n", file, NR, $0 >"/dev/stderr"; next }
        $1 == "env" { printf "%s:%d: a setting is env NAME VARIABLE=VALUE, without blanks in the value: %s\n", file, NR, $0 >"/dev/stderr"; next }
        { printf "%s:%d: not a tunnel, a setting or a comment: %s\n", file, NR, $0 >"/dev/stderr" }
    ' "$TUNNELS"
}

# The names of the well-formed tunnels, each once.
names() {
    [ -r "$TUNNELS" ] || return 0
    awk '$1 == "tunnel" && $2 ~ /^[A-Za-z0-9_.-]+$/ && NF >= 3 && !($2 in seen) { seen[$2] = 1; print $2 }' "$TUNNELS"
}

arguments() {
    awk -v n="$1" '$1 == "tunnel" && $2 == n { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$TUNNELS"
}

settings() {
    awk -v n="$1" '$1 == "env" && $2 == n && $3 ~ /^[A-Za-z_][A-Za-z0-9_]*=/ && NF == 3 { print $3 }' "$TUNNELS"
}

pid_of() {
    pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    # A zombie (killed, not yet reaped) does not count as running.
    if [ -r "/proc/$pid/stat" ]; then
        state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
        [ "$state" != Z ] || return 1
    fi
    echo "$pid"
}

start_one() {
    if pid=$(pid_of "$1"); then
        echo "$1: already running (pid $pid)"
        return 0
    fi
    rm -f "$RUN_DIR/$1.pid"
    (
        for setting in $(settings "$1"); do
            # shellcheck disable=SC2163 # VAR=VALUE: exported as given
            export "$setting"
        done
        export AUTOSSH_GATETIME=0 AUTOSSH_PIDFILE="$RUN_DIR/$1.pid"
        # shellcheck disable=SC2046,SC2086 # the arguments are split on purpose
        exec "$AUTOSSH" -f $SSH_OPTIONS $(arguments "$1")
    ) || { echo "$1: failed to start"; return 1; }
    # The pid file is written once autossh is in the background.
    tries=0
    while ! pid_of "$1" >/dev/null && [ $tries -lt 50 ]; do
        sleep 0.1 2>/dev/null || sleep 1
        tries=$((tries + 1))
    done
    if pid=$(pid_of "$1"); then
        echo "$1: started (pid $pid)"
    else
        echo "$1: failed to start"
        return 1
    fi
}

stop_one() {
    pid=$(pid_of "$1") || { echo "$1: not running"; rm -f "$RUN_DIR/$1.pid"; return 0; }
    # It may have ended since: nothing left to ask.
    kill -TERM "$pid" 2>/dev/null || true
    # autossh stops ssh (SIGKILL after 5 s if it must), then exits.
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt $((STOP_WAIT * 10)) ]; do
        sleep 0.1 2>/dev/null || sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/$1.pid"
    echo "$1: stopped"
}

status() {
    running=0
    stopped=0
    for name in $(names); do
        if pid=$(pid_of "$name"); then
            echo "$name: running (pid $pid)"
            running=$((running + 1))
        else
            echo "$name: stopped"
            stopped=$((stopped + 1))
        fi
    done
    if [ $stopped -eq 0 ] && [ $running -gt 0 ]; then return 0; fi
    if [ $running -eq 0 ]; then return 3; fi
    return 1
}

case "${1:-}" in
start)
    mkdir -p "$RUN_DIR"
    check
    rc=0
    for name in $(names); do start_one "$name" || rc=1; done
    exit $rc
    ;;
stop)
    # Every pid file, also of tunnels no longer listed.
    for file in "$RUN_DIR"/*.pid; do
        [ -e "$file" ] || continue
        name=${file##*/}
        stop_one "${name%.pid}"
    done
    exit 0
    ;;
restart)
    "$0" stop
    exec "$0" start
    ;;
status)
    status
    exit $?
    ;;
check)
    check
    ;;
*)
    echo "usage: $0 start|stop|restart|status|check" >&2
    exit 1
    ;;
esac
