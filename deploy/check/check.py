"""Static checks of deploy/ that need Python: run by scripts/check-deploy, in its venv
(deploy/check/requirements.txt). Each subcommand prints what it checked and exits 1 with the
reasons when something is wrong.

  check.py dockerfile REPO DEPINFO OUT    the Dockerfile's stages and commands, and the build
                                          context: every file the compiler read for offboard
                                          (DEPINFO, cargo's dep-info of the binary) is sent
                                          despite .dockerignore and copied into the build
                                          stage; the context is copied to OUT
  check.py k8s REPO OUT                   the manifests agree with each other, the image and
                                          the config; writes the ConfigMap's offboard.toml
                                          to OUT/offboard.toml
  check.py grafana REPO OUT               the dashboard's structure; writes its queries as
                                          Prometheus rules to OUT/dashboard-rules.yml, for
                                          promtool to check their syntax
  check.py names REPO SCRAPE              every metric the alert rules and the dashboard use
                                          is one offboard registers (src/) or exported in
                                          SCRAPE (a /metrics answer of the built binary)
"""

import json
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import yaml

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL: {msg}")


def ok(msg):
    print(f"  ok: {msg}")


def done():
    if failures:
        print(f"{len(failures)} problem(s)")
        sys.exit(1)


# --- Dockerfile -------------------------------------------------------------------------

def cmd_dockerfile(repo, depinfo, out):
    import dockerfile
    from docker.utils.build import exclude_paths

    path = repo / "deploy" / "Dockerfile"
    cmds = dockerfile.parse_file(str(path))
    stages = []
    for c in cmds:
        if c.cmd == "FROM":
            name = c.value[2] if len(c.value) == 3 and c.value[1].upper() == "AS" else None
            stages.append({"from": c.value[0], "name": name, "cmds": []})
        elif stages:
            stages[-1]["cmds"].append(c)
    ok(f"parsed {path.relative_to(repo)}: {len(stages)} stages "
       f"({', '.join(str(s['name']) for s in stages)})")
    build = next((s for s in stages if s["name"] == "build"), None)
    if build is None:
        fail("no stage named 'build' (docker build --target build needs one)")
        return
    if "bookworm" not in build["from"] or not build["from"].startswith("rust:"):
        fail(f"the build stage should start from a Rust image on Debian bookworm, not {build['from']}")
    runs = [c.value[0] for c in build["cmds"] if c.cmd == "RUN"]
    builds = [r for r in runs if "cargo build" in r]
    if len(builds) < 2:
        fail("the build stage should run cargo build twice: dependencies first, then the sources")
    for r in builds:
        if not re.search(r"cargo build --release --locked(\s|$)", r):
            fail(f"the build stage's cargo build is not `cargo build --release --locked`: {r!r}")
    # The dependency layer copies only the manifest and the lock file.
    copies = [c for c in build["cmds"] if c.cmd == "COPY"]
    if not copies or sorted(copies[0].value[:-1]) != ["Cargo.lock", "Cargo.toml"]:
        fail("the build stage's first COPY should be Cargo.toml and Cargo.lock alone (the cached dependency layer)")
    if not any(c.value[:-1] == (".",) for c in copies):
        fail("the build stage should COPY . (the context .dockerignore lets through)")
    workdir = next((c.value[0] for c in build["cmds"] if c.cmd == "WORKDIR"), None)
    ok(f"build stage: FROM {build['from']}, WORKDIR {workdir}, "
       f"{len(builds)} x cargo build --release --locked")

    runtime = stages[-1]
    if runtime is build:
        fail("the last stage is the build stage: there is no runtime stage")
        return
    rc = runtime["cmds"]
    user = [c.value[0] for c in rc if c.cmd == "USER"]
    if not user:
        fail("the runtime stage sets no USER (it would run as root)")
    else:
        uid = user[-1].split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            fail(f"the runtime USER should be a fixed non-root numeric UID, not {user[-1]}")
        else:
            ok(f"runtime stage: FROM {runtime['from']}, USER {user[-1]}")
    entry = [c for c in rc if c.cmd == "ENTRYPOINT"]
    cmd = [c for c in rc if c.cmd == "CMD"]
    if not entry or not entry[-1].json or list(entry[-1].value) != ["offboard"]:
        fail('the runtime ENTRYPOINT should be ["offboard"] (exec form)')
    if not cmd or not cmd[-1].json or list(cmd[-1].value) != ["run"]:
        fail('the runtime CMD should be ["run"] (exec form)')
    env = {}
    for c in rc:
        if c.cmd == "ENV":
            env.update(dict(zip(c.value[0::2], c.value[1::2])))
    listen = env.get("OFFBOARD_SERVER__LISTEN", "")
    exposed = [p.split("/")[0] for c in rc if c.cmd == "EXPOSE" for p in c.value]
    port = listen.rsplit(":", 1)[-1]
    if not listen.startswith("0.0.0.0:"):
        fail(f"the image should serve the operations endpoint on 0.0.0.0 (OFFBOARD_SERVER__LISTEN), not {listen!r}")
    if port not in exposed:
        fail(f"the operations port {port} is not EXPOSEd ({exposed})")
    else:
        ok(f"runtime: ENTRYPOINT [\"offboard\"], CMD [\"run\"], listens on {listen}, EXPOSE {port}")
    # The binary the runtime copies is the one the build stage installs.
    binary = [c for c in rc if c.cmd == "COPY" and any(f.startswith("--from=build") for f in c.flags)
              and c.value[-1] == "/usr/local/bin/offboard"]
    if not binary:
        fail("the runtime stage does not COPY --from=build the binary to /usr/local/bin/offboard")
    else:
        src = binary[0].value[0]
        if not any(src in r for r in runs):
            fail(f"the runtime copies {src}, which no RUN of the build stage writes")

    # The build context: what .dockerignore lets through.
    ignore = repo / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    sent = set(exclude_paths(str(repo), list(patterns), dockerfile="deploy/Dockerfile"))
    inputs = read_depinfo(depinfo, repo)
    if not inputs:
        fail(f"no repository file in {depinfo}")
    missing = sorted(i for i in inputs if i not in sent)
    if missing:
        fail(f".dockerignore leaves out files the build reads: {', '.join(missing)}")
    else:
        ok(f"the context keeps all {len(inputs)} files the compiler read for offboard "
           f"(.dockerignore: {', '.join(patterns)})")
    for p in ("target", ".git"):
        if p in sent:
            fail(f"{p}/ is in the build context: add it to .dockerignore")
    # Copy the context (files only) for the caller to build as the build stage does.
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for rel in sorted(sent):
        src = repo / rel
        if src.is_file() and not src.is_symlink():
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            count += 1
    ok(f"build context: {count} files copied to {out}")


def read_depinfo(depinfo, repo):
    """Repository files (relative) that cargo's dep-info lists as inputs of the binary."""
    text = Path(depinfo).read_text()
    first = text.split("\n\n")[0]
    _, _, deps = first.partition(": ")
    files = set()
    for token in re.split(r"(?<!\\) ", deps.replace("\\\n", " ")):
        token = token.strip().replace("\\ ", " ")
        if not token:
            continue
        p = Path(token)
        try:
            rel = p.resolve().relative_to(repo.resolve())
        except ValueError:
            continue  # outside the repository: the toolchain, the registry
        if (repo / rel).is_file():
            files.add(str(rel))
    return files


# --- Kubernetes -------------------------------------------------------------------------

def load_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def pod_spec(obj):
    if obj["kind"] == "Deployment":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def cmd_k8s(repo, out):
    k8s = repo / "deploy" / "k8s"
    objs = {}
    for f in sorted(k8s.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for d in load_docs(f):
            objs[(d["kind"], d["metadata"]["name"])] = (f.name, d)
    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for r in kust.get("resources", []):
        if not (k8s / r).is_file():
            fail(f"kustomization.yaml lists {r}, which does not exist")
        elif "secret" in r.lower():
            fail(f"kustomization.yaml applies {r}: secrets are never applied from the repository")
    ok(f"kustomization.yaml: resources {', '.join(kust.get('resources', []))} exist")

    cms = [d for (k, _), (_, d) in objs.items() if k == "ConfigMap"]
    if len(cms) != 1 or "offboard.toml" not in cms[0].get("data", {}):
        fail("expected one ConfigMap with an offboard.toml")
        return
    cm = cms[0]
    text = cm["data"]["offboard.toml"]
    config = tomllib.loads(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "offboard.toml").write_text(text)
    image_env = dockerfile_env(repo)
    grace = parse_seconds(config.get("worker", {}).get("shutdown_grace", "30s"))
    secrets = [d for (k, _), (_, d) in objs.items() if k == "Secret"]
    secret_keys = {(s["metadata"]["name"], key) for s in secrets for key in
                   list(s.get("stringData", {})) + list(s.get("data", {}))}
    docker_uid = dockerfile_uid(repo)

    workloads = [(f, d) for (k, _), (f, d) in objs.items() if k in ("Deployment", "CronJob")]
    if {d["kind"] for _, d in workloads} != {"Deployment", "CronJob"}:
        fail("expected a Deployment (offboard run) and a CronJob (offboard once)")
    for f, d in workloads:
        spec = pod_spec(d)
        where = f"{d['kind']} {d['metadata']['name']}"
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            fail(f"{where}: securityContext.runAsNonRoot must be true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{where}: seccompProfile must be RuntimeDefault")
        if docker_uid is not None and psc.get("runAsUser") != docker_uid:
            fail(f"{where}: runAsUser {psc.get('runAsUser')} is not the image's USER {docker_uid}")
        tgp = spec.get("terminationGracePeriodSeconds", 30)
        if grace is not None and tgp <= grace:
            fail(f"{where}: terminationGracePeriodSeconds {tgp} leaves no time past worker.shutdown_grace ({grace}s)")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        (c,) = spec["containers"]
        want = ["run"] if d["kind"] == "Deployment" else ["once"]
        if c.get("args") != want:
            fail(f"{where}: args should be {want}, not {c.get('args')}")
        csc = c.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(f"{where}: readOnlyRootFilesystem must be true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: allowPrivilegeEscalation must be false")
        if csc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"{where}: capabilities must drop ALL")
        if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits", {}).get("memory"):
            fail(f"{where}: set resource requests and a memory limit")
        env = {e["name"]: e for e in c.get("env", [])}
        cfg_path = env.get("OFFBOARD_CONFIG", {}).get("value")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        cfg_mount = mounts.get(str(Path(cfg_path or "/nowhere").parent))
        if not cfg_mount or volumes.get(cfg_mount["name"], {}).get("configMap", {}).get("name") != cm["metadata"]["name"]:
            fail(f"{where}: OFFBOARD_CONFIG {cfg_path} is not in a mount of ConfigMap {cm['metadata']['name']}")
        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and (ref["name"], ref["key"]) not in secret_keys:
                fail(f"{where}: env {e['name']} reads {ref['name']}/{ref['key']}, which secret.example.yaml does not have")
        if "OFFBOARD_DATABASE__URL" not in env or "secretKeyRef" not in env["OFFBOARD_DATABASE__URL"].get("valueFrom", {}):
            fail(f"{where}: the database URL should come from a Secret (OFFBOARD_DATABASE__URL)")
        # Provider secret files named in the config are in a mounted Secret.
        for name, p in config.get("providers", {}).items():
            sf = p.get("client_secret_file")
            if not sf:
                continue
            mount = mounts.get(str(Path(sf).parent))
            vol = volumes.get(mount["name"]) if mount else None
            items = {i["path"]: i["key"] for i in (vol or {}).get("secret", {}).get("items", [])}
            sname = (vol or {}).get("secret", {}).get("secretName")
            if not vol or Path(sf).name not in items or (sname, items[Path(sf).name]) not in secret_keys:
                fail(f"{where}: providers.{name}.client_secret_file {sf} is not a key of a mounted Secret")
        if d["kind"] == "Deployment":
            # Where offboard listens in the pod: environment over config file, the pod's
            # environment over the image's, and 127.0.0.1:9187 when nothing says.
            sources = [("the Deployment's OFFBOARD_SERVER__LISTEN", env.get("OFFBOARD_SERVER__LISTEN", {}).get("value")),
                       ("the image's OFFBOARD_SERVER__LISTEN", image_env.get("OFFBOARD_SERVER__LISTEN")),
                       ("the ConfigMap's server.listen", config.get("server", {}).get("listen")),
                       ("the default", "127.0.0.1:9187")]
            source, listen = next((s, v) for s, v in sources if v)
            shadowed = [s for s, v in sources[sources.index((source, listen)) + 1:-1] if v and v != listen]
            if shadowed:
                fail(f"{where}: {source} ({listen}) overrides {', '.join(shadowed)}, which would never apply")
            if not listen.startswith("0.0.0.0:"):
                fail(f"{where}: offboard listens on {listen} ({source}): it must be 0.0.0.0:PORT in a pod")
            port = int(listen.rsplit(":", 1)[-1])
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            if ports.get("ops") != port:
                fail(f"{where}: container port 'ops' {ports.get('ops')} is not server.listen's port {port}")
            probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
            for k, want_path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                if probes[k].get("path") != want_path or probes[k].get("port") not in ("ops", port):
                    fail(f"{where}: {k} should GET {want_path} on port ops, not {probes[k]}")
            ok(f"{where}: probes /healthz and /readyz on port ops = {port}, where offboard listens ({source}); "
               f"grace {tgp}s > shutdown_grace {grace}s; non-root UID {psc.get('runAsUser')}, read-only root, no capabilities")
        else:
            ok(f"{where}: offboard once, same config, secrets and security context")
    for (k, name), (f, d) in objs.items():
        if k == "Service":
            selected = [w for _, w in workloads if w["kind"] == "Deployment" and
                        d["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()]
            if not selected:
                fail(f"Service {name}: its selector matches no Deployment's pods")
            tp = [p.get("targetPort") for p in d["spec"]["ports"]]
            if "ops" not in tp and port not in tp:
                fail(f"Service {name}: no port targets ops ({tp})")
            else:
                ok(f"Service {name}: targets port ops")


def parse_seconds(text):
    m = re.fullmatch(r"(\d+)s", str(text).strip())
    return int(m.group(1)) if m else None


def dockerfile_env(repo):
    """The ENV of the Dockerfile's last stage."""
    import dockerfile

    env = {}
    for c in dockerfile.parse_file(str(repo / "deploy" / "Dockerfile")):
        if c.cmd == "FROM":
            env = {}
        elif c.cmd == "ENV":
            env.update(dict(zip(c.value[0::2], c.value[1::2])))
    return env


def dockerfile_uid(repo):
    for line in (repo / "deploy" / "Dockerfile").read_text().splitlines():
        m = re.match(r"\s*USER\s+(\d+)", line)
        if m:
            uid = int(m.group(1))
    return uid if "uid" in locals() else None


# --- Grafana ----------------------------------------------------------------------------

def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard_queries(dash):
    for p in walk_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            yield p, t


def cmd_grafana(repo, out):
    path = repo / "deploy" / "grafana" / "offboard.json"
    dash = json.loads(path.read_text())
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in dash:
            fail(f"the dashboard has no {key}")
    variables = dash["templating"]["list"]
    ds_vars = [v["name"] for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if not ds_vars:
        fail("no Prometheus datasource variable in templating")
        return
    ds_refs = {f"${{{ds_vars[0]}}}", f"${ds_vars[0]}"}
    var_names = {v["name"] for v in variables}
    ids = set()
    count = 0
    for p in walk_panels(dash["panels"]):
        if p["id"] in ids:
            fail(f"panel id {p['id']} used twice")
        ids.add(p["id"])
        g = p.get("gridPos", {})
        if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
            fail(f"panel {p['title']!r}: bad gridPos {g}")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") not in ds_refs:
            fail(f"panel {p['title']!r} does not use the datasource variable")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not refs or len(set(refs)) != len(refs):
            fail(f"panel {p['title']!r}: no targets, or repeated refIds {refs}")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") not in ds_refs:
                fail(f"panel {p['title']!r} target {t.get('refId')} does not use the datasource variable")
            for v in re.findall(r"\$\{?(\w+)", t["expr"]):
                if v not in var_names and not v.startswith("__"):
                    fail(f"panel {p['title']!r} uses ${v}, which is no dashboard variable")
            count += 1
    for v in variables:
        if v.get("type") == "query" and v.get("datasource", {}).get("uid") not in ds_refs:
            fail(f"variable {v['name']} does not use the datasource variable")
    ok(f"{path.relative_to(repo)}: {len(ids)} panels, {count} queries, all on ${{{ds_vars[0]}}}")
    # Every query as a recording rule, with Grafana's variables given values, so that promtool
    # parses each one as PromQL.
    rules = []
    for i, (p, t) in enumerate(dashboard_queries(dash)):
        rules.append({"record": f"dashboard:query_{i}", "expr": grafana_to_promql(t["expr"])})
    for v in variables:
        q = v.get("query")
        if v.get("type") == "query":
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q["query"] if isinstance(q, dict) else q)
            if not m:
                fail(f"variable {v['name']}: not label_values(METRIC, LABEL)")
            else:
                rules.append({"record": f"dashboard:variable_{v['name']}", "expr": m.group(1)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))


def grafana_to_promql(expr):
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# --- Metric names -----------------------------------------------------------------------

SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def used_metrics(expr):
    """The offboard_* metric names an expression reads (in strings, label values, they are not
    metrics)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(r"\b(offboard_[a-z0-9_]+)\b", expr))


def registered(repo):
    """offboard_NAME for every metric src/ registers or a collector encodes (prometheus-client
    appends the unit, and _total to counters)."""
    names = set()
    for f in (repo / "src").rglob("*.rs"):
        text = f.read_text()
        if "register" not in text and "encode_descriptor" not in text:
            continue
        # register(NAME, ...) for a metric; encode_descriptor(NAME, ...) in a Collector.
        for m in re.finditer(r"\.(?:register|encode_descriptor)\(\s*\"([a-z_][a-z0-9_]*)\"", text):
            names.add(f"offboard_{m.group(1)}")
        for m in re.finditer(r"\.register_with_unit\(\s*\"([a-z_][a-z0-9_]*)\"\s*,\s*\"(?:[^\"\\]|\\.)*\"\s*,\s*Unit::(\w+)", text, re.S):
            names.add(f"offboard_{m.group(1)}_{m.group(2).lower()}")
    return names


def scraped(path):
    names = set()
    for line in Path(path).read_text().splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.match(r"[\w:]+", line).group(0))
    return names


def base(name):
    for s in SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def cmd_names(repo, scrape):
    rules = yaml.safe_load((repo / "deploy" / "prometheus" / "alerts.yml").read_text())
    wanted = {}
    for g in rules["groups"]:
        for r in g["rules"]:
            for n in used_metrics(r["expr"]):
                wanted.setdefault(n, set()).add(f"alert {r.get('alert', r.get('record'))}")
    dash = json.loads((repo / "deploy" / "grafana" / "offboard.json").read_text())
    for p, t in dashboard_queries(dash):
        for n in used_metrics(grafana_to_promql(t["expr"])):
            wanted.setdefault(n, set()).add(f"panel {p['title']!r}")
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            for n in used_metrics(grafana_to_promql(q)):
                wanted.setdefault(n, set()).add(f"variable {v['name']}")
    reg = registered(repo)
    exported = scraped(scrape)
    known = reg | exported
    missing = []
    for n in sorted(wanted):
        if n in exported or n in known or base(n) in known:
            continue
        missing.append(n)
        fail(f"{n} is no metric of offboard (used by {', '.join(sorted(wanted[n]))})")
    ok(f"{len(wanted) - len(missing)} of {len(wanted)} metric names used by alerts.yml and offboard.json "
       f"are offboard's ({len(reg)} registered in src/, {len(exported)} names in the scrape)")


def main():
    cmd, repo, *rest = sys.argv[1:]
    repo = Path(repo).resolve()
    if cmd == "dockerfile":
        cmd_dockerfile(repo, rest[0], Path(rest[1]))
    elif cmd == "k8s":
        cmd_k8s(repo, Path(rest[0]))
    elif cmd == "grafana":
        cmd_grafana(repo, Path(rest[0]))
    elif cmd == "names":
        cmd_names(repo, rest[0])
    else:
        sys.exit(f"unknown check {cmd}")
    done()


if __name__ == "__main__":
    main()
