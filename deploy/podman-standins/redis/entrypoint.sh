#!/bin/sh
# The official image builds redis with protected mode off; bookworm's needs it on the command line.
set -eu
if [ "$1" = redis-server ]; then
    shift
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
