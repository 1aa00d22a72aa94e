#!/bin/bash
# The image's HEALTHCHECK (installed as /usr/local/bin/tollgate-healthcheck): GET /status on the admin port,
# healthy on a 200. It speaks HTTP through bash's /dev/tcp so that the image carries no HTTP client (curl and
# the TLS, LDAP and Kerberos libraries it pulls in were 13 MB). The admin token is sent when ADMIN_TOKEN is
# set, so the check keeps working when admin.public_metrics is off. Usage: tollgate-healthcheck [PORT]
set -euo pipefail
port="${1:-8081}"
exec 3<>"/dev/tcp/127.0.0.1/$port"
auth=""
if [ -n "${ADMIN_TOKEN:-}" ]; then
  auth="Authorization: Bearer $ADMIN_TOKEN"$'\r\n'
fi
printf 'GET /status HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n%sConnection: close\r\n\r\n' "$port" "$auth" >&3
read -r -t 2 _ code _ <&3
[ "$code" = 200 ]
