#!/usr/bin/env python3
"""Checks of the deployment artifacts that the off-the-shelf validators cannot make.

Run by deploy/validate.sh; each subcommand prints what it checked and exits non-zero with the
reasons when something is wrong.

  checks.py k8s RENDERED.yaml SECRET_EXAMPLE.yaml   ServiceMonitor schema (CRD), wiring, hardening
  checks.py compose RENDERED_COMPOSE.yaml           bind-mount sources exist, roles are healthy
  checks.py dashboard-rules DASHBOARD.json OUT.yml   every panel query as a rule, for promtool
  checks.py policy POLICY.toml                       the policy format of docs/ARCHITECTURE.md
  checks.py dockerfile Dockerfile .dockerignore      COPY sources exist and are in the context
  checks.py runbooks ALERTS.yml OPERATIONS.md        every alert has a runbook section there
"""
import fnmatch
import json
import os
import re
import sys
import tomllib

import yaml

ROLES_WITH_DEPLOYMENT = {"relay", "worker", "api", "reconcile"}
# Roles with a local state store on a volume of their own.
ROLES_WITH_STATEFULSET = {"fold"}
REFERENCED_SECRETS = {"live2vod-vod", "live2vod-callback", "live2vod-kafka"}


class Problems:
    def __init__(self, what):
        self.what = what
        self.items = []
        self.checked = 0

    def check(self, ok, message):
        self.checked += 1
        if not ok:
            self.items.append(message)

    def finish(self):
        if self.items:
            print(f"FAIL {self.what}: {len(self.items)} problem(s)")
            for item in self.items:
                print(f"  - {item}")
            sys.exit(1)
        print(f"ok   {self.what}: {self.checked} checks")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc):
    kind = doc.get("kind")
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"], doc["spec"]["template"]["metadata"].get("labels", {})
    return None, None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# ------------------------------------------------------------------------------------ k8s ---
def check_service_monitor(doc, p):
    """Validates a ServiceMonitor against the prometheus-operator CRD's model, strictly: the
    model ignores unknown fields, so a round trip that loses a field means a misspelt one."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    try:
        model = ServiceMonitor.model_validate(doc)
    except Exception as e:  # pydantic.ValidationError; the message names the field
        p.check(False, f"{name_of(doc)} does not match the ServiceMonitor schema: {e}")
        return
    back = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    p.check(back == doc, f"{name_of(doc)} has fields the ServiceMonitor schema does not know: "
                         f"{sorted(diff_paths(doc, back))}")


def diff_paths(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k not in b:
                yield f"{path}.{k}"
            else:
                yield from diff_paths(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diff_paths(x, y, f"{path}[{i}]")
    elif a != b:
        yield path


def cmd_k8s(rendered, secret_example):
    p = Problems("k8s wiring and hardening")
    docs = load_all(rendered)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    workloads = [d for d in docs if pod_spec(d)[0] is not None]
    services = by_kind.get("Service", [])
    configmaps = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}

    # Every role has its Deployment, and the replay is a suspended Job.
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component")
                  for d in by_kind.get("Deployment", [])}
    p.check(components == ROLES_WITH_DEPLOYMENT,
            f"Deployments for {sorted(components)}, expected {sorted(ROLES_WITH_DEPLOYMENT)}")
    stateful = {d["metadata"]["labels"].get("app.kubernetes.io/component")
                for d in by_kind.get("StatefulSet", [])}
    p.check(stateful == ROLES_WITH_STATEFULSET,
            f"StatefulSets for {sorted(stateful)}, expected {sorted(ROLES_WITH_STATEFULSET)}")
    # A StatefulSet's state directory is on its claim, and it names its governing Service.
    service_names = {d["metadata"]["name"] for d in by_kind.get("Service", [])}
    for sts in by_kind.get("StatefulSet", []):
        n = name_of(sts)
        p.check(sts["spec"].get("serviceName") in service_names,
                f"{n}: serviceName {sts['spec'].get('serviceName')} is not a Service of the base")
        claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
        for c in sts["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            state_dir = env.get("LIVE2VOD_STATE_DIR")
            p.check(state_dir is not None, f"{n}: no LIVE2VOD_STATE_DIR")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            p.check(mounts.get(state_dir) in claims,
                    f"{n}: LIVE2VOD_STATE_DIR {state_dir} is not mounted from a volume claim")
        psc = sts["spec"]["template"]["spec"].get("securityContext", {})
        p.check(psc.get("fsGroup") is not None, f"{n}: no fsGroup (the claim must be writable)")
    jobs = by_kind.get("Job", [])
    p.check(len(jobs) == 1 and jobs[0]["spec"].get("suspend") is True,
            "exactly one Job (replay) with spec.suspend: true")

    secret_keys = {}
    with open(secret_example) as f:
        secret_text = f.read()
    for d in load_all(secret_example):
        p.check(d.get("kind") == "Secret", f"{secret_example}: {name_of(d)} is not a Secret")
        secret_keys[d["metadata"]["name"]] = set((d.get("stringData") or {}) | (d.get("data") or {}))
    p.check(not by_kind.get("Secret"), "the base must not contain Secrets (only references)")

    for w in workloads:
        spec, labels = pod_spec(w)
        n = name_of(w)
        grace = spec.get("terminationGracePeriodSeconds")
        p.check(isinstance(grace, int) and grace >= 30,
                f"{n}: terminationGracePeriodSeconds {grace} leaves no time to drain")
        psc = spec.get("securityContext", {})
        p.check(psc.get("runAsNonRoot") is True, f"{n}: pod securityContext.runAsNonRoot")
        p.check(spec.get("automountServiceAccountToken") is False, f"{n}: mounts an API token")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            cn = f"{n} container {c['name']}"
            sc = c.get("securityContext", {})
            p.check(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem")
            p.check(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation")
            p.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{cn}: drop ALL caps")
            res = c.get("resources", {})
            p.check({"cpu", "memory"} <= set(res.get("requests", {})), f"{cn}: requests")
            p.check({"memory"} <= set(res.get("limits", {})), f"{cn}: memory limit")
            ports = {pt["name"]: pt["containerPort"] for pt in c.get("ports", [])}
            p.check(ports.get("metrics") == 9464, f"{cn}: metrics port 9464")
            if w["kind"] in ("Deployment", "StatefulSet"):
                live = c.get("livenessProbe", {}).get("httpGet", {})
                ready = c.get("readinessProbe", {}).get("httpGet", {})
                p.check(live.get("path") == "/healthz" and live.get("port") in ports,
                        f"{cn}: liveness probe on /healthz at a declared port")
                p.check(ready.get("path") == "/readyz" and ready.get("port") in ports,
                        f"{cn}: readiness probe on /readyz at a declared port")
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                p.check(ref in configmaps, f"{cn}: envFrom ConfigMap {ref} is not in the base")
            for e in c.get("env", []):
                p.check(e["name"].startswith("LIVE2VOD_") or e["name"] == "RUST_LOG",
                        f"{cn}: env {e['name']} is not a LIVE2VOD_* variable")
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    p.check(ref["name"] in REFERENCED_SECRETS,
                            f"{cn}: unexpected Secret {ref['name']}")
                    # An optional key may be commented out in the example, but must be shown.
                    shown = (ref["key"] in secret_keys.get(ref["name"], set())
                             or (ref.get("optional") and f"{ref['key']}:" in secret_text))
                    p.check(shown, f"{cn}: Secret {ref['name']} key {ref['key']} is missing "
                                   f"from {secret_example}")
            for m in c.get("volumeMounts", []):
                claims = {t["metadata"]["name"] for t in w.get("spec", {}).get("volumeClaimTemplates", [])}
                p.check(m["name"] in volumes or m["name"] in claims,
                        f"{cn}: mount of undeclared volume {m['name']}")
        for v in volumes.values():
            if "configMap" in v:
                p.check(v["configMap"]["name"] in configmaps,
                        f"{n}: volume ConfigMap {v['configMap']['name']} is not in the base")

    # Services select pods, and their named target ports exist on those pods.
    for s in services:
        sel = s["spec"].get("selector", {})
        matched = [w for w in workloads if selects(sel, pod_spec(w)[1])]
        p.check(matched, f"{name_of(s)} selects no pod template")
        for port in s["spec"]["ports"]:
            tp = port.get("targetPort")
            if isinstance(tp, str):
                for w in matched:
                    names = {pt["name"] for c in pod_spec(w)[0]["containers"]
                             for pt in c.get("ports", [])}
                    p.check(tp in names, f"{name_of(s)} targetPort {tp} not on {name_of(w)}")

    # PDBs and the HPA point at something that exists.
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    replicated = deployments | {d["metadata"]["name"]: d for d in by_kind.get("StatefulSet", [])}
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        p.check(any(selects(sel, pod_spec(d)[1]) for d in replicated.values()),
                f"{name_of(pdb)} selects no Deployment or StatefulSet")
    p.check(len(by_kind.get("PodDisruptionBudget", [])) == len(replicated),
            "one PodDisruptionBudget per Deployment and StatefulSet")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        p.check(target in deployments, f"{name_of(hpa)} targets missing {target}")
        for c in deployments.get(target, {}).get("spec", {}).get("template", {}).get(
                "spec", {}).get("containers", []):
            p.check("cpu" in c.get("resources", {}).get("requests", {}),
                    f"{name_of(hpa)}: CPU utilisation needs CPU requests on {c['name']}")

    # The ServiceMonitor: valid against its CRD, and it finds the Services' metrics port.
    monitors = by_kind.get("ServiceMonitor", [])
    p.check(len(monitors) == 1, "exactly one ServiceMonitor")
    for sm in monitors:
        check_service_monitor(sm, p)
        sel = sm["spec"]["selector"].get("matchLabels", {})
        scraped = [s for s in services if selects(sel, s["metadata"].get("labels", {}))]
        comps = {s["metadata"]["labels"].get(sm["spec"].get("jobLabel", "")) for s in scraped}
        p.check(ROLES_WITH_DEPLOYMENT | ROLES_WITH_STATEFULSET | {"replay"} <= comps,
                f"{name_of(sm)} scrapes {sorted(c for c in comps if c)}; every role must be "
                f"scraped, with its jobLabel set")
        for ep in sm["spec"]["endpoints"]:
            for s in scraped:
                p.check(any(pt.get("name") == ep["port"] for pt in s["spec"]["ports"]),
                        f"{name_of(sm)}: {name_of(s)} has no port named {ep['port']}")
    p.finish()


# -------------------------------------------------------------------------------- compose ---
def cmd_compose(rendered):
    p = Problems("docker-compose wiring")
    with open(rendered) as f:
        cfg = yaml.safe_load(f)
    services = cfg["services"]
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.get("source") if isinstance(v, dict) else v.split(":")[0]
            named = cfg.get("volumes") or {}
            # The short form names a volume when its source is not a path.
            default = "bind" if src and src[0] in "./~" else "volume"
            typ = v.get("type", default) if isinstance(v, dict) else default
            if typ == "volume":
                p.check(src in named, f"{name}: volume {src} is not declared under volumes:")
            elif typ == "bind" or (src and src.startswith("/")):
                p.check(os.path.exists(src), f"{name}: bind-mount source {src} does not exist")
    for role in ("relay", "fold", "worker", "api"):
        svc = services.get(role)
        p.check(svc is not None, f"service {role} missing")
        if not svc:
            continue
        cmd = svc.get("command", [])
        p.check(cmd and cmd[0] == role, f"{role}: command must start with the subcommand {role}")
        p.check("--brokers=kafka:9092" in cmd, f"{role}: --brokers=kafka:9092")
        p.check("--metrics-listen=0.0.0.0:9464" in cmd, f"{role}: --metrics-listen on 9464")
        p.check("9464" in " ".join(svc.get("healthcheck", {}).get("test", [])),
                f"{role}: healthcheck on the metrics port")
    with open("deploy/prometheus/prometheus.yml") as f:
        prom = yaml.safe_load(f)
    targets = {t for job in prom["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]}
    for role in ("relay", "fold", "worker", "api"):
        p.check(f"{role}:9464" in targets, f"prometheus.yml does not scrape {role}:9464")
    p.finish()


# ------------------------------------------------------------------------------ dashboard ---
def cmd_dashboard_rules(dashboard, out):
    """Turns every panel query into a recording rule so that promtool parses it (PromQL
    syntax, function names, label matchers), with Grafana's range variables substituted."""
    with open(dashboard) as f:
        dash = json.load(f)
    p = Problems("dashboard structure")
    p.check(dash.get("schemaVersion", 0) >= 36, "schemaVersion >= 36")
    vars_ = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    p.check(vars_.get("DS_PROMETHEUS", {}).get("type") == "datasource",
            "a datasource variable DS_PROMETHEUS")
    rules = []
    ids = set()
    titles = []
    for panel in dash["panels"]:
        ids_ok = panel["id"] not in ids
        p.check(ids_ok, f"duplicate panel id {panel['id']}")
        ids.add(panel["id"])
        if panel["type"] == "row":
            titles.append(panel["title"])
            continue
        p.check(panel.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}",
                f"panel {panel['title']!r} does not use the datasource variable")
        for t in panel.get("targets", []):
            expr = t["expr"]
            for var, val in (("$__rate_interval", "5m"), ("$__range", "1h"),
                             ("$__interval", "1m")):
                expr = expr.replace(var, val)
            p.check("$" not in expr, f"panel {panel['title']!r}: unknown variable in {expr}")
            rules.append({"record": f"dashboard:panel{panel['id']}:{t['refId']}", "expr": expr})
    for role in ("Relay", "Fold", "Worker"):
        p.check(any(role in t for t in titles), f"a row for {role}")
    p.check(any("SLO" in t for t in titles), "an SLO row")
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    p.check(len(rules) > 0, "the dashboard has queries")
    p.finish()
    print(f"     {len(rules)} panel queries written to {out} for promtool")


# --------------------------------------------------------------------------------- policy ---
ACTIONS = {"none", "manual", "transcode"}
RULE_KEYS = {"streams", "segments", "composed", "compose_deadline_secs"}
DEFAULT_KEYS = {"segments", "composed", "compose_deadline_secs"}
ACTION_KEYS = {"action", "template_group", "priority", "retries", "retry_backoff_secs"}
# Keys only a transcode action takes (src/domain/policy.rs refuses them elsewhere).
TRANSCODE_ONLY_KEYS = {"template_group", "priority", "retries", "retry_backoff_secs"}


def cmd_policy(path):
    p = Problems(f"policy {path}")
    with open(path, "rb") as f:
        try:
            pol = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            p.check(False, f"not TOML: {e}")
            p.finish()
    p.check(set(pol) <= {"defaults", "rules"}, f"top-level keys {sorted(pol)}")

    def check_table(t, allowed, where):
        p.check(set(t) <= allowed, f"{where}: unknown keys {sorted(set(t) - allowed)}")
        for k in ("segments", "composed"):
            if k in t:
                a = t[k]
                p.check(set(a) <= ACTION_KEYS, f"{where}.{k}: unknown keys {sorted(set(a) - ACTION_KEYS)}")
                p.check(a.get("action") in ACTIONS, f"{where}.{k}: action {a.get('action')!r}")
                if a.get("action") == "transcode":
                    p.check(bool(a.get("template_group")), f"{where}.{k}: transcode needs template_group")
                    r = a.get("retries", 0)
                    p.check(isinstance(r, int) and 0 <= r <= 10, f"{where}.{k}: retries {r!r} (0..=10)")
                    b = a.get("retry_backoff_secs", 60)
                    p.check(isinstance(b, int) and 1 <= b <= 86400,
                            f"{where}.{k}: retry_backoff_secs {b!r} (1..=86400)")
                else:
                    extra = sorted(set(a) & TRANSCODE_ONLY_KEYS)
                    p.check(not extra, f"{where}.{k}: {extra} only go with action \"transcode\"")
        if "compose_deadline_secs" in t:
            v = t["compose_deadline_secs"]
            p.check(isinstance(v, int) and v > 0, f"{where}: compose_deadline_secs {v!r}")

    check_table(pol.get("defaults", {}), DEFAULT_KEYS, "defaults")
    for i, r in enumerate(pol.get("rules", [])):
        check_table(r, RULE_KEYS, f"rules[{i}]")
        glob = r.get("streams")
        p.check(isinstance(glob, str) and glob.count("/") == 2,
                f"rules[{i}].streams must be a 'domain/app/stream' glob, got {glob!r}")
    p.finish()


# ----------------------------------------------------------------------------- dockerfile ---
def ignored(path, patterns):
    """.dockerignore semantics for the patterns used here: the last matching pattern wins; a
    pattern that matches a directory matches everything under it."""
    result = False
    for neg, pat in patterns:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(pre, pat) for pre in prefixes):
            result = not neg
    return result


def cmd_dockerfile(dockerfile, dockerignore):
    p = Problems("Dockerfile context")
    patterns = []
    with open(dockerignore) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            patterns.append((neg, line.lstrip("!").strip("/")))
    with open(dockerfile) as f:
        text = f.read()
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M)
    for line in copies:
        parts = [x for x in line.split() if not x.startswith("--")]
        for src in parts[:-1]:
            src = src.strip("/").removeprefix("./")
            p.check(os.path.exists(src), f"COPY source {src} does not exist")
            files = [src] if os.path.isfile(src) else [
                os.path.join(d, fn) for d, _, fns in os.walk(src) for fn in fns]
            p.check(files and not all(ignored(fp, patterns) for fp in files),
                    f"COPY source {src} is excluded by {dockerignore}")
    p.check(re.search(r'^ENTRYPOINT \["live2vod"\]', text, re.M) is not None,
            'ENTRYPOINT ["live2vod"]')
    p.check(re.search(r"^USER (?!0|root)", text, re.M) is not None, "runs as a non-root USER")
    p.finish()


# ------------------------------------------------------------------------------- runbooks ---
def github_anchor(heading):
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def cmd_runbooks(alerts, doc):
    p = Problems(f"runbook links {alerts} -> {doc}")
    with open(doc) as f:
        text = f.read()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        p.check(link in anchors, f"{doc} links to #{link}, which is no heading")
    with open(alerts) as f:
        groups = yaml.safe_load(f)["groups"]
    for g in groups:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            url = r.get("annotations", {}).get("runbook_url", "")
            path, _, anchor = url.partition("#")
            p.check(path == doc, f"{r['alert']}: runbook_url {url!r} does not point into {doc}")
            p.check(anchor in anchors, f"{r['alert']}: no section #{anchor} in {doc}")
    p.finish()


def main(argv):
    cmds = {"k8s": cmd_k8s, "compose": cmd_compose, "dashboard-rules": cmd_dashboard_rules,
            "policy": cmd_policy, "dockerfile": cmd_dockerfile, "runbooks": cmd_runbooks}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__)
        return 2
    cmds[argv[1]](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
