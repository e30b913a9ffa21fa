#!/bin/sh
# Tunnels: the rc script for boxes with SysV-style rc scripts. One autossh
# per tunnel of the tunnel list, each in the background with gate time 0 and
# monitoring on; the work is autossh-tunnels' (docs/tunnels.md).
#
#   autossh.sh start|stop|restart [NAME]|reload|status [NAME] [--json]|check|metrics
#
# Settings, from the environment: AUTOSSH (the binary), AUTOSSH_TUNNELS (the
# list), AUTOSSH_RUN_DIR (pid and state files), AUTOSSH_STOP_WAIT (seconds to
# wait for a tunnel to stop), AUTOSSH_SSH_OPTIONS (options put before every
# tunnel's own, split as a line of the list is). autossh-tunnels is the one
# beside AUTOSSH, else the one in PATH.
set -eu

AUTOSSH=${AUTOSSH:-/usr/local/bin/autossh}
AUTOSSH_TUNNELS=${AUTOSSH_TUNNELS:-/usr/local/etc/autossh/tunnels.conf}
AUTOSSH_RUN_DIR=${AUTOSSH_RUN_DIR:-/var/run/autossh}
AUTOSSH_STOP_WAIT=${AUTOSSH_STOP_WAIT:-15}
AUTOSSH_SSH_OPTIONS=${AUTOSSH_SSH_OPTIONS:-}
export AUTOSSH AUTOSSH_TUNNELS AUTOSSH_RUN_DIR AUTOSSH_STOP_WAIT AUTOSSH_SSH_OPTIONS

program=${AUTOSSH%/*}/autossh-tunnels
if [ ! -x "$program" ]; then
    program=$(command -v autossh-tunnels 2>/dev/null) || {
        echo "$0: autossh-tunnels is neither beside $AUTOSSH nor in PATH" >&2
        exit 1
    }
fi
exec "$program" "$@"
