#!/usr/bin/env bash
# Property-tests a running admin server against its own /openapi.json. Starts nothing: point it at a gateway's
# admin listener that has a database attached, e.g.
#   TOKEN=admin-token ./crates/admin/schemathesis.sh http://127.0.0.1:8081
# Needs `pip install schemathesis`. Not wired into CI: it writes spend rules and rebuilds rollups on the target.
set -euo pipefail
url="${1:?usage: TOKEN=<admin.token> $0 <admin base url>}"
: "${TOKEN:?set TOKEN to the admin.token}"
exec schemathesis run "${url%/}/openapi.json" \
    --header "Authorization: Bearer ${TOKEN}" \
    --checks not_a_server_error,response_schema_conformance
