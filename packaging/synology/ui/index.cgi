#!/bin/sh
# The Tunnels app's server side. autossh-tunnels answers the request (no
# shell reads any of it), with the package's settings.
PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/syno/bin:/usr/syno/sbin
export PATH
package=${AUTOSSH_PACKAGE:-/var/packages/autossh}
# shellcheck source=../scripts/common
. "$package/scripts/common"
exec "$TUNNELS_PROGRAM" cgi
