#!/usr/bin/env bash
# Property-tests the admin API against its own /openapi.json with schemathesis: no 5xx, no response that
# breaks the schema. Starts a gateway (debug build, embedded SQLite, a file spend rule) on free loopback ports.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet prometheus-client
[ -x "$root/target/debug/tollgate" ] || cargo build --locked -p tollgate
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy_port=$(port); admin_port=$(port)
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$proxy_port"
[admin]
listen = "127.0.0.1:$admin_port"
token = "schemathesis-token"
[logging]
format = "json"
[[spend_limits]]
id = "file-rule"
budget_usd = 5.0
window = "1d"
dimensions = [ { key = "metadata.user", mode = "split" } ]
TOML
(cd "$work" && exec "$root/target/debug/tollgate" serve --config tollgate.toml > gateway.log 2>&1) &
pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$admin_port/status" >/dev/null 2>&1 && break
  sleep 0.1
done
# /metrics through the Prometheus client library's parser (it raises on any malformed line).
curl -fs "http://127.0.0.1:$admin_port/metrics" > "$work/metrics.txt"
python3 - "$work/metrics.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
names = {f.name for f in families}
assert all(n.startswith("tollgate_") for n in names), names
for required in ["tollgate_requests", "tollgate_tokens", "tollgate_request_duration_seconds", "tollgate_database_up"]:
    assert required in names, f"{required} missing from {sorted(names)}"
print(f"metrics parse: {len(families)} families ok")
PY

schemathesis run "http://127.0.0.1:$admin_port/openapi.json" \
  --header "Authorization: Bearer schemathesis-token" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples 30
