# shellcheck shell=bash disable=SC2154 # the variables named below come from the calling script
# Sourced by docker/build-and-smoke.sh (step 5): brings up docker/docker-compose.yml's tollgate, postgres and
# prometheus services with podman-compose, with local stand-ins tagged as the compose file's postgres and
# prometheus images, and checks that a request through the gateway lands as a row in Postgres and that
# Prometheus scrapes the gateway. Grafana is not started: its image cannot be had here (docker/validate.sh
# checks its provisioning files). Uses pm, build, poll, fail, now, elapsed, record_time, work, image, state,
# fake_port and provider_key from the calling script.

t_compose="$(now)"
ensure_standin "$postgres_image" postgres.Containerfile
ensure_standin "$prometheus_image" prometheus.Containerfile

compose=podman-compose
# podman-compose calls `podman` from PATH: make that podman use runc as well.
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec %s --runtime %s "$@"\n' "$(command -v podman)" "$runc_path" > "$work/bin/podman"
chmod +x "$work/bin/podman"
export PATH="$work/bin:$PATH"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
compose_proxy_port="$(free_port)"
compose_admin_port="$(free_port)"
compose_prometheus_port="$(free_port)"
compose_admin_token="compose-admin-$(openssl rand -hex 8)"
compose_gateway_token="compose-gateway-$(openssl rand -hex 8)"
# podman-compose reads .env beside the compose file, over its own environment; Debian's 1.0.3 has no
# --env-file. So the stack runs from a copy of the compose file and the files it mounts, with a .env of its
# own: a docker/.env of the user's is neither read nor written.
compose_dir="$work/compose"
mkdir -p "$compose_dir"
cp -r docker/docker-compose.yml docker/tollgate.compose.toml docker/prometheus.yml docker/prometheus-alerts.yml \
  docker/grafana "$compose_dir/"
# Every variable of docker/.env.example, with test values.
cat > "$compose_dir/.env" <<EOF
ADMIN_TOKEN=$compose_admin_token
GATEWAY_TOKEN=$compose_gateway_token
POSTGRES_PASSWORD=$(openssl rand -hex 12)
GRAFANA_ADMIN_PASSWORD=unused-grafana-is-not-started
OPENAI_API_KEY=$provider_key
ANTHROPIC_API_KEY=
GEMINI_API_KEY=
GATEWAY_IMAGE=$image
RUST_LOG=info
PROXY_PORT=$compose_proxy_port
ADMIN_PORT=$compose_admin_port
PROMETHEUS_PORT=$compose_prometheus_port
GRAFANA_PORT=$(free_port)
PROMETHEUS_RETENTION=1d
EOF
# The only addition to the compose file: the openai provider points at the fake provider on the host.
cat > "$compose_dir/compose.override.yml" <<EOF
services:
  tollgate:
    environment:
      TOLLGATE_PROVIDERS__OPENAI__BASE_URL: http://host.containers.internal:$fake_port/v1
EOF
compose_project="tollgate-compose-$run_id"
compose_cmd() {
  (cd "$compose_dir" && "$compose" -p "$compose_project" -f docker-compose.yml -f compose.override.yml "$@")
}
service_container() {
  pm ps -a --filter "label=com.docker.compose.project=$compose_project" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

echo "== compose: $compose_project (postgres, then tollgate and prometheus)"
# podman runs healthchecks from systemd timers, which this machine does not have, so `depends_on: condition:
# service_healthy` cannot wait by itself: postgres first, its compose healthcheck run by hand until it passes,
# then the rest.
compose_cmd up -d postgres >"$work/compose-up.log" 2>&1 || { cat "$work/compose-up.log" >&2; fail "compose up postgres failed"; }
postgres_container="$(service_container postgres)"
[ -n "$postgres_container" ] || fail "no postgres container"
poll 90 "postgres's compose healthcheck" pm healthcheck run "$postgres_container"
compose_cmd up -d tollgate prometheus >>"$work/compose-up.log" 2>&1 || { cat "$work/compose-up.log" >&2; fail "compose up tollgate failed"; }
tollgate_container="$(service_container tollgate)"
prometheus_container="$(service_container prometheus)"
[ -n "$tollgate_container" ] && [ -n "$prometheus_container" ] || fail "tollgate or prometheus did not start"
poll 60 "tollgate's compose healthcheck" pm healthcheck run "$tollgate_container"
record_time "compose: up to healthy" "$(elapsed "$t_compose")"
curl -fsS "http://127.0.0.1:$compose_admin_port/status" | sed 's/^/GET \/status: /'
echo

code="$(curl -sS -D "$work/compose.headers" -o "$work/compose.body" -w '%{http_code}' \
  -H "Authorization: Bearer $compose_gateway_token" -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping through compose"}]}' \
  "http://127.0.0.1:$compose_proxy_port/v1/chat/completions")"
echo "POST /v1/chat/completions through compose -> $code $(cat "$work/compose.body")"
[ "$code" = 200 ] || fail "the request through the compose stack got $code"
compose_log_id="$(awk -F': ' 'tolower($1) == "cf-aig-log-id" { gsub(/\r/, "", $2); print $2 }' "$work/compose.headers")"
[ -n "$compose_log_id" ] || fail "no cf-aig-log-id header from the compose stack"

pg_row() {
  pm exec "$postgres_container" psql -U tollgate -d tollgate -Atc \
    "SELECT id, provider, model, status, tokens_in, tokens_out, cost_nanos, cost_source FROM request_logs WHERE id = '$compose_log_id'"
}
row_in_postgres() { [ -n "$(pg_row)" ]; }
poll 20 "row $compose_log_id in Postgres" row_in_postgres
pg_line="$(pg_row)"
echo "row in Postgres (request_logs): $pg_line"
case "$pg_line" in
  "$compose_log_id|openai|gpt-4o-mini|200|12|5|"*"|catalog") ;;
  *) fail "unexpected row in Postgres: $pg_line" ;;
esac

# Prometheus scrapes tollgate:8081/metrics over the compose network (scrape_interval 15s).
tollgate_target_up() {
  curl -fsS "http://127.0.0.1:$compose_prometheus_port/api/v1/query?query=up%7Bjob%3D%22tollgate%22%7D" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and r[0]["value"][1] == "1" else 1)'
}
poll 60 "Prometheus to scrape tollgate" tollgate_target_up
requests_seen() {
  curl -fsS "http://127.0.0.1:$compose_prometheus_port/api/v1/query?query=count(%7B__name__%3D~%22tollgate_.*%22%2Cjob%3D%22tollgate%22%7D)" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1]); sys.exit(0 if r and int(r[0]["value"][1]) > 0 else 1)'
}
echo "Prometheus: up{job=\"tollgate\"} = 1, $(requests_seen) tollgate_* series scraped"
rules="$(curl -fsS "http://127.0.0.1:$compose_prometheus_port/api/v1/rules" | python3 -c 'import json, sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')"
echo "Prometheus: $rules alert rules loaded from prometheus-alerts.yml"
[ "$rules" -gt 0 ] || fail "Prometheus loaded no alert rules"

t_down="$(now)"
compose_cmd down -v -t "$stop_grace" >"$work/compose-down.log" 2>&1 || { cat "$work/compose-down.log" >&2; fail "compose down failed"; }
# podman-compose 1.0.3 leaves the project's network behind.
pm network rm -f "${compose_project}_default" >/dev/null 2>&1 || true
compose_project=""
record_time "compose: down" "$(elapsed "$t_down")"
record_time "compose: whole" "$(elapsed "$t_compose")"
echo "== compose stack passed"
