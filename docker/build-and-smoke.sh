#!/usr/bin/env bash
# Builds the Tollgate container image with podman and smoke-tests it, on a Debian bookworm machine without a
# Docker engine and without access to any container registry (run as root):
#   1. local base images, made when missing: debian:bookworm-slim from debootstrap, and stand-ins for
#      rust:1.95-slim-bookworm (that base plus the host's Rust toolchain), postgres:17-bookworm and
#      prom/prometheus (Debian's own packages), each tagged with the name docker/Dockerfile and
#      docker/docker-compose.yml use, so those files stay as real Docker users need them;
#   2. the image from docker/Dockerfile: the in-image build (BINARY_SOURCE=builder) or, with
#      TOLLGATE_IMAGE_BINARY=prebuilt, the host's release binary copied in (the dependency-fetching stages
#      are then built on their own, so the in-image build still runs up to its compile step);
#   3. the image itself: size, OCI labels, non-root user, healthcheck, tini entrypoint, no build tools;
#   4. one container run as Kubernetes runs it (read-only root filesystem, tmpfs /tmp, no capabilities): it
#      answers its HEALTHCHECK, proxies a chat completion to a fake provider on the host (which must see the
#      provider key, never the gateway token), logs the request through the admin API, and on SIGTERM
#      finishes an in-flight request, flushes it to SQLite in the volume and exits 0 within the grace period;
#   5. the compose stack (tollgate, postgres, prometheus; grafana cannot be had here) with podman-compose: a
#      request through the gateway lands as a row in Postgres, and Prometheus scrapes the gateway.
# Any failure stops the script with a non-zero exit and the container logs. Usage:
#   docker/build-and-smoke.sh                 # everything, building the binary inside the image
#   TOLLGATE_IMAGE_BINARY=prebuilt docker/build-and-smoke.sh
# Environment: TOLLGATE_IMAGE_BINARY (builder|prebuilt, default builder), TOLLGATE_IMAGE_TAG (default
# tollgate:local), TOLLGATE_IMAGE_COMPOSE (1|0, default 1), TOLLGATE_IMAGE_STATE (work directory for the
# base image root filesystems and the podman configuration, default /var/tmp/tollgate-image).
set -euo pipefail
# The whole script is one compound command, so bash parses it before running any of it: editing the file
# while it runs cannot change what runs.
{

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

binary_source="${TOLLGATE_IMAGE_BINARY:-builder}"
image="${TOLLGATE_IMAGE_TAG:-tollgate:local}"
with_compose="${TOLLGATE_IMAGE_COMPOSE:-1}"
state="${TOLLGATE_IMAGE_STATE:-/var/tmp/tollgate-image}"
debian_image="docker.io/library/debian:bookworm-slim"
rust_version="1.95"
rust_image="docker.io/library/rust:${rust_version}-slim-bookworm"
postgres_image="docker.io/library/postgres:17-bookworm"
prometheus_image="docker.io/prom/prometheus:v2.55.1"
# The gateway's server.shutdown_grace is 30 s; docker-compose.yml and the docs give the container 45 s.
stop_grace=45

# fd 4 is the script's stderr, so that a failure inside a polled check (whose output poll discards) is seen.
exec 4>&2
fail() {
  echo "FAIL: $*" >&4
  exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
timings=()
record_time() { timings+=("$(printf '%-34s %6ss' "$1" "$2")"); }

case "$binary_source" in
  builder | prebuilt) ;;
  *) fail "TOLLGATE_IMAGE_BINARY must be builder or prebuilt, not $binary_source" ;;
esac
[ "$(id -u)" -eq 0 ] || fail "run as root: podman, debootstrap and the volume checks need it"

# --- tools ---------------------------------------------------------------------------------------------------
# netavark and aardvark-dns: the compose network and its service names (postgres, tollgate); netavark sets up
# the bridge with iptables, which a minimal machine may not have (podman then fails with "netavark: No such file").
missing=()
for package in podman runc netavark aardvark-dns iptables debootstrap podman-compose python3 curl binutils openssl; do
  dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
runc_path="$(command -v runc)"
[ -x /usr/sbin/runc ] && runc_path=/usr/sbin/runc

mkdir -p "$state"
# This machine's sandbox refuses podman's default rlimits. A configuration of our own (CONTAINERS_CONF)
# instead of editing /etc/containers/containers.conf; podman-compose's podman calls inherit it.
cat > "$state/containers.conf" <<'EOF'
[containers]
default_ulimits = []
EOF
export CONTAINERS_CONF="$state/containers.conf"
# runc, always: crun refuses this machine's hybrid cgroups.
pm() { podman --runtime "$runc_path" "$@"; }
# podman schedules healthchecks with systemd timers; without systemd it says so on every run, stop and rm of
# a container with a HEALTHCHECK, and goes on. The checks are run by hand here (podman healthcheck run), so
# those lines are dropped; any other error is kept.
pm_quiet() {
  local status=0
  pm "$@" 2>"$state/podman.err" || status=$?
  grep -v 'unable to get systemd connection' "$state/podman.err" >&2 || true
  return "$status"
}

# TLS from inside a build (crates.io through this machine's egress proxy) needs the host's CA bundle: mounted
# for the build only, never copied into an image.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
build_mounts=()
[ -f "$ca_bundle" ] && build_mounts=(-v "$ca_bundle:/run/host-ca.crt:ro")
build() { nice -n 19 podman --runtime "$runc_path" build --pull=never --network=host --format docker "${build_mounts[@]}" "$@"; }

echo "== podman"
podman --version
echo "runtime: $runc_path ($("$runc_path" --version | head -n 1))"

# --- 1. base images ----------------------------------------------------------------------------------------
# debian:bookworm-slim from debootstrap --variant=minbase, trimmed as the official slim image is (no apt
# lists, no documentation but copyright files, no man pages or translations) and with the same apt sources.
ensure_debian_image() {
  if pm image exists "$debian_image"; then
    echo "have $debian_image"
    return
  fi
  local t0 rootfs="$state/debian-rootfs"
  t0="$(now)"
  echo "== making $debian_image with debootstrap"
  rm -rf "$rootfs"
  nice -n 19 debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$state/debootstrap.log" 2>&1 ||
    { tail -n 20 "$state/debootstrap.log" >&2; fail "debootstrap failed (log: $state/debootstrap.log)"; }
  cat > "$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  tar -C "$rootfs" -c . | pm import --quiet --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  rm -rf "$rootfs"
  record_time "base image (debootstrap)" "$(elapsed "$t0")"
}

ensure_rust_image() {
  if pm image exists "$rust_image"; then
    echo "have $rust_image"
    return
  fi
  local t0 sysroot version
  t0="$(now)"
  sysroot="$(rustc "+$rust_version" --print sysroot 2>/dev/null || rustc --print sysroot)"
  version="$("$sysroot/bin/rustc" --version)"
  case "$version" in
    "rustc $rust_version."*) ;;
    *) fail "the host's toolchain is $version, the Dockerfile builds with $rust_version: rustup toolchain install $rust_version" ;;
  esac
  echo "== making $rust_image from $sysroot ($version)"
  build -f docker/local-images/rust.Containerfile -v "$sysroot:/toolchain:ro" \
    --build-arg RUST_VERSION="$(echo "$version" | awk '{print $2}')" -t "$rust_image" docker/local-images >"$state/rust-image.log" 2>&1 ||
    { tail -n 30 "$state/rust-image.log" >&2; fail "building $rust_image failed"; }
  record_time "rust stand-in image" "$(elapsed "$t0")"
}

ensure_standin() {
  local tag="$1" containerfile="$2" t0
  if pm image exists "$tag"; then
    echo "have $tag"
    return
  fi
  t0="$(now)"
  echo "== making $tag from docker/local-images/$containerfile"
  build -f "docker/local-images/$containerfile" -t "$tag" docker/local-images >"$state/$containerfile.log" 2>&1 ||
    { tail -n 30 "$state/$containerfile.log" >&2; fail "building $tag failed"; }
  record_time "stand-in $containerfile" "$(elapsed "$t0")"
}

ensure_debian_image
ensure_rust_image

# --- 2. the image ------------------------------------------------------------------------------------------
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
version="$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)"
image_args=(-f docker/Dockerfile --ignorefile docker/Dockerfile.dockerignore
  --build-arg VERSION="$version" --build-arg REVISION="$revision"
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)")

if [ "$binary_source" = prebuilt ]; then
  # The in-image build up to its compile step: the skeleton loads as a workspace and every locked crate
  # downloads. The full compile in the image is left to BINARY_SOURCE=builder.
  t0="$(now)"
  echo "== docker/Dockerfile up to the dependencies stage"
  build "${image_args[@]}" --target dependencies -t tollgate-dependencies:local . >"$state/dependencies.log" 2>&1 ||
    { tail -n 40 "$state/dependencies.log" >&2; fail "the dependencies stage failed (log: $state/dependencies.log)"; }
  record_time "stages skeleton + dependencies" "$(elapsed "$t0")"

  t0="$(now)"
  echo "== release binary on the host"
  nice -n 19 cargo build --release --locked -p tollgate
  mkdir -p docker/prebuilt
  # As the builder stage does: without the debug line tables, with the symbols.
  objcopy --strip-debug target/release/tollgate docker/prebuilt/tollgate
  chmod 0755 docker/prebuilt/tollgate
  record_time "host release build" "$(elapsed "$t0")"
fi

t0="$(now)"
echo "== podman build $image (BINARY_SOURCE=$binary_source)"
build "${image_args[@]}" --build-arg BINARY_SOURCE="$binary_source" -t "$image" . >"$state/image.log" 2>&1 ||
  { tail -n 40 "$state/image.log" >&2; fail "podman build failed (log: $state/image.log)"; }
record_time "image build ($binary_source)" "$(elapsed "$t0")"

# --- 3. the image itself -----------------------------------------------------------------------------------
echo "== image checks"
size_bytes="$(pm image inspect --format '{{.Size}}' "$image")"
echo "size: $size_bytes bytes ($(awk -v b="$size_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }'))"
inspect() { pm image inspect --format "$1" "$image"; }
user="$(inspect '{{.Config.User}}')"
[ "$user" = "10001:10001" ] || fail "image user is '$user', expected 10001:10001"
entrypoint="$(inspect '{{json .Config.Entrypoint}}')"
[ "$entrypoint" = '["/usr/bin/tini","--"]' ] || fail "entrypoint is $entrypoint, expected tini"
healthcheck="$(inspect '{{json .Config.Healthcheck}}')"
case "$healthcheck" in
  *"/usr/local/bin/tollgate-healthcheck"*) ;;
  *) fail "the image's HEALTHCHECK is not tollgate-healthcheck (got $healthcheck)" ;;
esac
for label in title description licenses version revision created; do
  value="$(pm image inspect --format "{{index .Labels \"org.opencontainers.image.$label\"}}" "$image")"
  if [ -z "$value" ] || [ "$value" = "<no value>" ]; then
    fail "label org.opencontainers.image.$label is missing"
  fi
  echo "label org.opencontainers.image.$label=$value"
done
[ "$(pm image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "$image")" = "$revision" ] ||
  fail "the revision label is not $revision"
# No compiler, linker, package cache or Rust toolchain in the runtime stage.
tools="$(pm_quiet run --rm --entrypoint /bin/sh "$image" -c \
  'for t in cargo rustc cc gcc ld make git curl; do command -v "$t"; done; ls /var/lib/apt/lists /var/cache/apt/archives 2>/dev/null | grep -v -e "^partial$" -e "^lock$" -e ":$" -e "^$"; true')"
[ -z "$tools" ] || fail "build tools or package caches in the runtime image: $tools"
echo "no build tools, no package lists"
pm_quiet run --rm "$image" tollgate --version

# --- 4. smoke test -----------------------------------------------------------------------------------------
work="$(mktemp -d)"
run_id="$$"
smoke_name="tollgate-smoke-$run_id"
smoke_volume="tollgate-smoke-$run_id"
fake_pid=""
compose_project=""
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    pm logs "$smoke_name" 2>/dev/null | tail -n 40 >&2 || true
  fi
  pm rm -f -t 0 "$smoke_name" >/dev/null 2>&1 || true
  pm volume rm -f "$smoke_volume" >/dev/null 2>&1 || true
  if [ -n "$compose_project" ]; then
    if [ "$status" -ne 0 ]; then
      for container in $(pm ps -a --filter "label=com.docker.compose.project=$compose_project" --format '{{.Names}}'); do
        echo "--- $container" >&2
        pm logs "$container" 2>&1 | tail -n 30 >&2 || true
      done
    fi
    compose_cmd down -v -t 5 >/dev/null 2>&1 || true
    pm network rm -f "${compose_project}_default" >/dev/null 2>&1 || true
  fi
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# Polls a command until it succeeds: poll SECONDS DESCRIPTION COMMAND...
poll() {
  local deadline description="$2"
  deadline=$(($(date +%s) + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for $description"
    sleep 0.2
  done
}

# The fake provider listens on every interface of the host: a container on podman's bridge reaches the host
# as host.containers.internal, not through the host's loopback.
python3 docker/smoke/fake_provider.py "$work/fake.port" "$work/upstream.jsonl" 0.0.0.0 &
fake_pid=$!
poll 10 "the fake provider" test -s "$work/fake.port"
fake_port="$(cat "$work/fake.port")"
echo "== smoke test: fake provider on host port $fake_port"

admin_token="smoke-admin-$(openssl rand -hex 8)"
gateway_token="smoke-gateway-$(openssl rand -hex 8)"
provider_key="sk-smoke-upstream-key"

t_start="$(now)"
# As deploy/kubernetes/deployment.yaml runs it: read-only root filesystem with a small tmpfs /tmp (and no
# other tmpfs podman would add by itself), every capability dropped, no privilege escalation.
pm_quiet run -d --name "$smoke_name" \
  --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,nosuid,nodev,size=16m \
  --cap-drop ALL --security-opt no-new-privileges \
  -p 127.0.0.1::8080 -p 127.0.0.1::8081 \
  -v "$smoke_volume:/var/lib/tollgate" \
  -e ADMIN_TOKEN="$admin_token" -e GATEWAY_TOKEN="$gateway_token" -e OPENAI_API_KEY="$provider_key" \
  -e TOLLGATE_PROVIDERS__OPENAI__BASE_URL="http://host.containers.internal:$fake_port/v1" \
  --stop-timeout "$stop_grace" \
  "$image" >/dev/null

healthy() {
  [ "$(pm inspect --format '{{.State.Running}}' "$smoke_name")" = true ] || fail "the container exited: $(pm logs "$smoke_name" 2>&1 | tail -n 20)"
  pm healthcheck run "$smoke_name"
}
poll 60 "the container's HEALTHCHECK" healthy
time_to_healthy="$(elapsed "$t_start")"
echo "healthy after ${time_to_healthy}s (podman healthcheck run: the image's HEALTHCHECK command)"
record_time "smoke: time to healthy" "$time_to_healthy"

proxy_port="$(pm port "$smoke_name" 8080/tcp | head -n 1 | awk -F: '{print $NF}')"
admin_port="$(pm port "$smoke_name" 8081/tcp | head -n 1 | awk -F: '{print $NF}')"
proxy="http://127.0.0.1:$proxy_port"
admin="http://127.0.0.1:$admin_port"

# Every process in the container runs as uid 10001, and PID 1 is tini.
processes="$(pm exec "$smoke_name" /bin/sh -c \
  'for s in /proc/[0-9]*/status; do awk "/^Name:/ { n = \$2 } /^Uid:/ { u = \$2 } END { print n, u }" "$s" 2>/dev/null; done; echo "pid1 $(cat /proc/1/comm)"')"
echo "$processes" | sed 's/^/  process: /'
echo "$processes" | grep -q '^pid1 tini$' || fail "PID 1 is not tini"
echo "$processes" | grep -q '^tollgate 10001$' || fail "no tollgate process running as uid 10001"
if echo "$processes" | grep -v '^pid1 ' | awk '$2 != 10001' | grep -q .; then
  fail "a process runs as another user than 10001"
fi
# The healthcheck can fail: pointed at a port nothing listens on, it reports unhealthy.
if pm exec "$smoke_name" /usr/local/bin/tollgate-healthcheck 9 2>/dev/null; then
  fail "tollgate-healthcheck passed against a closed port"
fi
# The root filesystem is read-only.
if pm exec "$smoke_name" /bin/sh -c 'touch /usr/local/bin/probe' 2>/dev/null; then
  fail "the root filesystem is writable"
fi

status="$(curl -fsS "$admin/status")"
echo "GET /status: $status"

# Without the gateway token: refused before any provider is called.
code="$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}' "$proxy/v1/chat/completions")"
[ "$code" = 401 ] || fail "a request without the gateway token got $code, expected 401"
[ ! -s "$work/upstream.jsonl" ] || fail "a request without the gateway token reached the provider"

request='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
echo "POST $proxy/v1/chat/completions $request"
code="$(curl -sS -D "$work/headers" -o "$work/body" -w '%{http_code}' \
  -H "Authorization: Bearer $gateway_token" -H 'Content-Type: application/json' \
  -d "$request" "$proxy/v1/chat/completions")"
echo "-> $code $(cat "$work/body")"
[ "$code" = 200 ] || fail "the chat completion through the gateway got $code"
grep -q '"pong"' "$work/body" || fail "the provider's answer did not come back"
log_id="$(awk -F': ' 'tolower($1) == "cf-aig-log-id" { gsub(/\r/, "", $2); print $2 }' "$work/headers")"
[ -n "$log_id" ] || fail "no cf-aig-log-id header"
upstream="$(tail -n 1 "$work/upstream.jsonl")"
echo "the provider saw: $upstream"
python3 - "$upstream" "$provider_key" <<'EOF' || fail "the provider did not get the configured key in place of the gateway token"
import json, sys
seen = json.loads(sys.argv[1])
assert seen["authorization"] == f"Bearer {sys.argv[2]}", seen
assert seen["path"] == "/v1/chat/completions", seen
EOF

# The row, through the admin API (flushed within database.flush_interval = 1s).
poll 20 "log row $log_id in the admin API" curl -fsS -o "$work/row.json" -H "Authorization: Bearer $admin_token" "$admin/api/logs/$log_id"
echo "GET /api/logs/$log_id: $(cat "$work/row.json")"

# SIGTERM with a request in flight: the fake holds a request whose message contains "[slow]" for 3 s. The
# gateway must finish it (200 to the client), flush its row, and exit 0 well before the grace period ends.
slow_request='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"[slow] hold on"}]}'
curl -sS -o "$work/slow.body" -w '%{http_code}' -H "Authorization: Bearer $gateway_token" -H 'Content-Type: application/json' \
  -D "$work/slow.headers" -d "$slow_request" "$proxy/v1/chat/completions" > "$work/slow.code" 2>"$work/slow.err" &
slow_pid=$!
slow_arrived() { grep -q '"slow": true' "$work/upstream.jsonl"; }
poll 10 "the slow request to reach the provider" slow_arrived
t_stop="$(now)"
pm_quiet stop -t "$stop_grace" "$smoke_name" >/dev/null
stop_seconds="$(elapsed "$t_stop")"
wait "$slow_pid" || true
exit_code="$(pm inspect --format '{{.State.ExitCode}}' "$smoke_name")"
echo "podman stop (SIGTERM) with one request in flight: exited $exit_code after ${stop_seconds}s (grace ${stop_grace}s)"
record_time "smoke: stop with a request in flight" "$stop_seconds"
[ "$exit_code" = 0 ] || fail "the container exited with $exit_code on SIGTERM"
awk -v s="$stop_seconds" -v g="$stop_grace" 'BEGIN { exit !(s < g - 5) }' || fail "stopping took ${stop_seconds}s, too close to the ${stop_grace}s grace period"
[ "$(cat "$work/slow.code")" = 200 ] || fail "the in-flight request got $(cat "$work/slow.code") during shutdown: $(cat "$work/slow.err")"
pm logs "$smoke_name" > "$work/smoke.log" 2>&1
grep -q 'SIGTERM received' "$work/smoke.log" || fail "the gateway did not log SIGTERM (tini did not forward it?)"
grep -q 'tollgate stopped' "$work/smoke.log" || fail "the gateway did not log its orderly stop"
slow_id="$(awk -F': ' 'tolower($1) == "cf-aig-log-id" { gsub(/\r/, "", $2); print $2 }' "$work/slow.headers")"

# Both rows, read from the SQLite file in the volume on the host once the container has gone.
volume_dir="$(pm volume inspect --format '{{.Mountpoint}}' "$smoke_volume")"
echo "SQLite in the volume: $volume_dir/tollgate.db"
ls -ln "$volume_dir" | sed 's/^/  /'
python3 - "$volume_dir/tollgate.db" "$log_id" "$slow_id" <<'EOF' || fail "the rows are not in the SQLite database in the volume"
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for log_id in sys.argv[2:]:
    row = db.execute(
        "SELECT id, provider, model, status, tokens_in, tokens_out, cost_nanos, cost_source FROM request_logs WHERE id = ?",
        (log_id,),
    ).fetchone()
    assert row is not None, f"no row {log_id}"
    print("  row:", dict(zip(["id", "provider", "model", "status", "tokens_in", "tokens_out", "cost_nanos", "cost_source"], row)))
    assert row[1] == "openai" and row[3] == 200 and row[4] == 12 and row[5] == 5, row
    assert row[6] > 0 and row[7] == "catalog", row
EOF
# The state files belong to the container's user.
owners="$(stat -c '%u' "$volume_dir"/tollgate.db*  | sort -u | tr '\n' ' ')"
[ "$owners" = "10001 " ] || fail "files in the volume owned by uid $owners, expected 10001"
pm_quiet rm -f "$smoke_name" >/dev/null
pm volume rm -f "$smoke_volume" >/dev/null
record_time "smoke: whole" "$(elapsed "$t_start")"
echo "== smoke test passed"

# --- 5. compose --------------------------------------------------------------------------------------------
if [ "$with_compose" = 1 ]; then
  # shellcheck source=docker/smoke/compose.sh
  . docker/smoke/compose.sh
fi

echo "== image: $image, $(awk -v b="$size_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')"
echo "== timings"
printf '  %s\n' "${timings[@]}"
echo "== image build and smoke test passed"
exit 0
}
