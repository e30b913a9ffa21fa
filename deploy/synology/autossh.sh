#!/bin/sh
# rc script for Synology DSM (and any box with SysV-style rc scripts): one
# autossh per tunnel listed in the tunnels file, each in the background with
# its own pid file and gate time 0, so that a tunnel started at boot keeps
# trying until the network is there.
#
#   autossh.sh start|stop|restart|status
#
# The tunnels file (default /usr/local/etc/autossh/tunnels.conf):
#
#   # tunnel NAME SSH-ARGUMENTS...   (arguments split on blanks, no quoting)
#   tunnel relay -M 20000 -N -o ServerAliveInterval=30 -R 2200:localhost:22 tunnel@relay.example.net
#   # env NAME VARIABLE=VALUE        (no blanks in the value)
#   env relay AUTOSSH_POLL=60
#   env relay AUTOSSH_LOGFILE=/var/log/autossh-relay.log
#
# status exits 0 when every listed tunnel runs and 3 otherwise, as DSM expects.

AUTOSSH=${AUTOSSH:-/usr/local/bin/autossh}
TUNNELS=${AUTOSSH_TUNNELS:-/usr/local/etc/autossh/tunnels.conf}
RUN_DIR=${AUTOSSH_RUN_DIR:-/var/run/autossh}
STOP_WAIT=${AUTOSSH_STOP_WAIT:-15}

names() {
    [ -r "$TUNNELS" ] || return 0
    awk '$1 == "tunnel" && $2 ~ /^[A-Za-z0-9_.-]+$/ { print $2 }' "$TUNNELS"
}

arguments() {
    awk -v n="$1" '$1 == "tunnel" && $2 == n { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$TUNNELS"
}

settings() {
    awk -v n="$1" '$1 == "env" && $2 == n && $3 ~ /^[A-Za-z_][A-Za-z0-9_]*=/ { print $3 }' "$TUNNELS"
}

pid_of() {
    pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
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
            export "$setting"
        done
        export AUTOSSH_GATETIME=0 AUTOSSH_PIDFILE="$RUN_DIR/$1.pid"
        # shellcheck disable=SC2046 # the arguments are split on purpose
        exec "$AUTOSSH" -f $(arguments "$1")
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
    pid=$(pid_of "$1") || { echo "$1: not running"; return 0; }
    kill -TERM "$pid"
    # autossh stops ssh (SIGKILL after 5 s if it must), then exits.
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt $((STOP_WAIT * 10)) ]; do
        sleep 0.1 2>/dev/null || sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        rm -f "$RUN_DIR/$1.pid"
    fi
    echo "$1: stopped"
}

status() {
    all=0
    for name in $(names); do
        if pid=$(pid_of "$name"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
            all=3
        fi
    done
    return $all
}

case "$1" in
start)
    mkdir -p "$RUN_DIR"
    rc=0
    for name in $(names); do start_one "$name" || rc=1; done
    exit $rc
    ;;
stop)
    for name in $(names); do stop_one "$name"; done
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
*)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 1
    ;;
esac
