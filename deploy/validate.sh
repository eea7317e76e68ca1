#!/usr/bin/env bash
# Validates the deployment artifacts: docker-compose.yml, the Kubernetes base, the Prometheus
# config and alert rules (with their unit tests), the Grafana dashboard, the policy example and
# the Dockerfile's build context.
#
#   bash deploy/validate.sh          # from anywhere; exit 0 only when every check passed
#
# Installs what it needs when it is missing (as root, non-interactively; quick when present):
#   Debian: docker-compose (1.29, `config` needs no Docker daemon), prometheus (for promtool),
#           and ShellCheck (lints this script)
#   PyPI:   kubernetes-validate (Kubernetes JSON schemas), cloudcoil-models-prometheus-operator
#           (the ServiceMonitor CRD schema, which kubernetes-validate does not have)
# kubectl (for `kubectl kustomize`) must already be installed.
#
# The metric names used by the dashboard and the alerts are checked by `cargo test --test
# deploy_metrics` (tests/deploy_metrics.rs), not here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

PIP_PACKAGES=(kubernetes-validate==1.37.0 cloudcoil-models-prometheus-operator==0.80.1.0)
# Kubernetes versions to validate against: the oldest still common in managed clusters and the
# newest the schemas know.
K8S_VERSIONS=(1.30.0 1.37.0)

passed=0
failed=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
# run DESCRIPTION CMD...: runs CMD, shows its output, counts the result.
run() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# ---------------------------------------------------------------------------------- tools ---
step "tools"
t0=$(date +%s)
apt_missing=()
command -v docker-compose >/dev/null || apt_missing+=(docker-compose)
command -v promtool >/dev/null || apt_missing+=(prometheus)
command -v shellcheck >/dev/null || apt_missing+=(shellcheck)
if ((${#apt_missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing ${apt_missing[*]}: run as root, or install them first" >&2
    exit 2
  fi
  echo "installing Debian packages: ${apt_missing[*]}"
  apt-get update -qq
  # No recommends: prometheus would pull node-exporter and friends, which we do not run.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${apt_missing[@]}" >/dev/null
fi
if ! python3 -c 'import kubernetes_validate, yaml, cloudcoil.models.prometheus_operator' 2>/dev/null; then
  echo "installing from PyPI: ${PIP_PACKAGES[*]}"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "${PIP_PACKAGES[@]}"
fi
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: it renders the kustomize base (kubectl kustomize)" >&2
  exit 2
fi
echo "docker-compose $(docker-compose version --short 2>/dev/null)," \
  "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'),"
echo "kubernetes-validate $(python3 -m kubernetes_validate --version)," \
  "kubectl $(kubectl version --client 2>/dev/null | awk '/Client/ {print $3}'), shellcheck $(shellcheck --version | awk '/^version/ {print $2}')"
echo "tools ready in $(($(date +%s) - t0)) s"

# -------------------------------------------------------------------------------- compose ---
step "docker-compose.yml"
run "docker-compose config -q (schema, interpolation, depends_on conditions)" \
  docker-compose -f docker-compose.yml config -q
if docker-compose -f docker-compose.yml config >"$WORK/compose.yml" 2>"$WORK/compose.err"; then
  run "compose wiring: bind mounts exist, roles' flags, health and scraping" \
    python3 deploy/checks.py compose "$WORK/compose.yml"
else
  cat "$WORK/compose.err"
  fail "docker-compose config (render)"
fi

# ------------------------------------------------------------------------------------ k8s ---
step "deploy/k8s (kustomize base)"
if kubectl kustomize deploy/k8s >"$WORK/k8s.yaml" 2>"$WORK/k8s.err"; then
  ok "kubectl kustomize deploy/k8s ($(grep -c '^kind:' "$WORK/k8s.yaml") resources)"
  for v in "${K8S_VERSIONS[@]}"; do
    # --strict rejects unknown fields. kubernetes-validate only WARNs about kinds it has no
    # schema for; we fail on those too, except the ServiceMonitor, checked below against the
    # prometheus-operator CRD schema instead.
    set +e
    python3 -m kubernetes_validate --strict --quiet -k "$v" "$WORK/k8s.yaml" >"$WORK/kv.out" 2>&1
    rc=$?
    set -e
    cat "$WORK/kv.out"
    if [[ $rc -eq 0 ]] && ! grep -v 'kind ServiceMonitor with api version monitoring.coreos.com/v1' \
      "$WORK/kv.out" | grep -q .; then
      ok "kubernetes-validate --strict -k $v: every built-in kind matches its schema"
    else
      fail "kubernetes-validate --strict -k $v"
    fi
  done
  run "ServiceMonitor against its CRD schema; wiring, probes, security, secrets" \
    python3 deploy/checks.py k8s "$WORK/k8s.yaml" deploy/k8s/secret.example.yaml
else
  cat "$WORK/k8s.err"
  fail "kubectl kustomize deploy/k8s"
fi
run "kubernetes-validate --strict deploy/k8s/secret.example.yaml" \
  python3 -m kubernetes_validate --strict --quiet deploy/k8s/secret.example.yaml
run "secret.example.yaml is not a resource of the base" python3 -c '
import sys, yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
listed = [r for key in ("resources", "components") for r in k.get(key) or []]
sys.exit("secret.example.yaml is listed" if any("secret" in r for r in listed) else 0)'
if cmp -s deploy/policy.example.toml deploy/k8s/policy.toml; then
  ok "deploy/k8s/policy.toml is identical to deploy/policy.example.toml"
else
  fail "deploy/k8s/policy.toml differs from deploy/policy.example.toml (cp one over the other)"
fi

# ----------------------------------------------------------------------------- prometheus ---
step "deploy/prometheus"
run "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml
run "promtool check config deploy/prometheus/prometheus.yml (and the rule files it loads)" \
  promtool check config deploy/prometheus/prometheus.yml
run "promtool test rules deploy/prometheus/alerts_test.yml (each alert fires when it should)" \
  promtool test rules deploy/prometheus/alerts_test.yml
run "every alert's runbook_url points to its section of docs/OPERATIONS.md" \
  python3 deploy/checks.py runbooks deploy/prometheus/alerts.yml docs/OPERATIONS.md

# -------------------------------------------------------------------------------- grafana ---
step "deploy/grafana"
run "python3 -m json.tool deploy/grafana/live2vod.json" \
  python3 -m json.tool deploy/grafana/live2vod.json /dev/null
if python3 deploy/checks.py dashboard-rules deploy/grafana/live2vod.json "$WORK/dashboard-rules.yml"; then
  ok "dashboard structure: rows, datasource variable, unique ids"
  run "promtool parses every dashboard query" promtool check rules "$WORK/dashboard-rules.yml"
else
  fail "dashboard structure"
fi
for f in deploy/grafana/provisioning/*/*.yml; do
  run "YAML $f" python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
done

# ------------------------------------------------------------------------- policy, docker ---
step "policy, Dockerfile, scripts"
run "deploy/policy.example.toml follows the policy format" \
  python3 deploy/checks.py policy deploy/policy.example.toml
run "Dockerfile: COPY sources exist and are not excluded by .dockerignore" \
  python3 deploy/checks.py dockerfile Dockerfile .dockerignore
run "shellcheck deploy/validate.sh deploy/docker/healthcheck.sh" \
  shellcheck deploy/validate.sh deploy/docker/healthcheck.sh

printf '\n%s passed, %s failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
