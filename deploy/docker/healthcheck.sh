#!/bin/bash
# live2vod-healthcheck PORT [PATH]: exit 0 when http://127.0.0.1:PORT/PATH answers 2xx.
# The runtime image has no curl or wget; bash's /dev/tcp is enough for a local probe.
set -u
port="${1:?usage: live2vod-healthcheck PORT [PATH]}"
path="${2:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
read -r -t 5 _ status _ <&3 || exit 1
exec 3<&-
[[ "$status" =~ ^2[0-9][0-9]$ ]]
