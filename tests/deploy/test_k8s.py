#!/usr/bin/env python3
"""deploy/k8s renders (`kubectl kustomize`) and the rendered Deployment keeps its promises:
probes on the admin port bound for the kubelet, the hardened securityContext, the spool on an
emptyDir at DYLIVE_SPOOL_DIR, the cookie file from a Secret at DYLIVE_COOKIE_FILE with mode 0400,
a grace period covering the 10 s drain, rollouts that never lower capacity, a PDB and a metrics
Service that select the pods (not-ready ones included), Secret keys that exist, and the
container image's numeric USER equal to runAsUser.

usage: test_k8s.py KUBECTL
"""
import os
import sys

import deploylib as dl

DRAIN_SECONDS = 10          # CONTRACT §2: SIGTERM drains and exits within 10 s


def main():
    kubectl = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "kubectl")
    docs, _ = dl.render(kubectl)
    checks = dl.Checks()
    expect, errors = checks.expect, checks.errors

    dep = dl.one(docs, "Deployment")
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: {**d.get("data", {}), **d.get("stringData", {})}
               for d in docs if d["kind"] == "Secret"}
    env = {}
    for e in c.get("envFrom", []):
        name = e["configMapRef"]["name"]
        expect(name in cms, f"envFrom names ConfigMap {name}, which is not rendered")
        env.update(cms.get(name, {}))
    for e in c.get("env", []):
        env[e["name"]] = e.get("value", e.get("valueFrom"))
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            expect(ref["key"] in secrets.get(ref["name"], {}), f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")

    # admin port: bound on every interface, the probes and the port agree with it
    admin = env.get("DYLIVE_ADMIN", "127.0.0.1:9464")
    host, _, port = admin.rpartition(":")
    expect(host in ("0.0.0.0", "[::]", "::"), f"DYLIVE_ADMIN={admin}: the kubelet cannot reach a loopback-bound admin port")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        expect(g.get("path") == path, f"{probe} must GET {path}")
        p = g.get("port")
        expect(ports.get(p, p) == int(port), f"{probe} port {p} is not the admin port {port}")
    expect("DYLIVE_REDIS_URL" in env and isinstance(env["DYLIVE_REDIS_URL"], dict),
           "DYLIVE_REDIS_URL must come from a Secret")
    expect("DYLIVE_WORKER_ID" in env, "DYLIVE_WORKER_ID unset (the pod name is the natural id)")

    # security
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    expect(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"), "runAsNonRoot not set")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    expect(uid == 10001, f"runAsUser {uid}, want 10001")
    expect(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem not true")
    expect(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation not false")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    expect((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
           "seccompProfile RuntimeDefault not set")
    expect(spec.get("automountServiceAccountToken") is False, "the worker needs no API token")
    res = c.get("resources", {})
    expect(res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"), "memory request/limit missing")

    # drain, rollout, disruptions
    grace = spec.get("terminationGracePeriodSeconds", 30)
    expect(grace >= max(30, DRAIN_SECONDS + 5), f"terminationGracePeriodSeconds {grace} does not cover the drain")
    ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
    expect(str(ru.get("maxUnavailable")) == "0", "rollingUpdate.maxUnavailable must be 0 (no capacity dip)")
    pdb = dl.one(docs, "PodDisruptionBudget")
    sel = pdb["spec"]["selector"]["matchLabels"]
    expect(all(labels.get(k) == v for k, v in sel.items()), "the PodDisruptionBudget does not select the pods")
    expect(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector vs pod labels")

    # volumes: spool and cookies
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    spool_dir = env.get("DYLIVE_SPOOL_DIR")
    m = mounts.get(spool_dir)
    expect(m is not None and "emptyDir" in vols.get(m["name"], {}), f"DYLIVE_SPOOL_DIR={spool_dir} is not an emptyDir mount")
    cookie = env.get("DYLIVE_COOKIE_FILE")
    if cookie:
        d, key = os.path.split(cookie)
        m = mounts.get(d)
        vol = vols.get(m["name"]) if m else None
        expect(vol and "secret" in vol, f"DYLIVE_COOKIE_FILE={cookie} is not in a Secret volume")
        if vol and "secret" in vol:
            expect(vol["secret"].get("defaultMode") == 0o400, "the cookie Secret must be mounted with mode 0400")
            expect(key in secrets.get(vol["secret"]["secretName"], {}), f"Secret has no key {key}")
            expect(m.get("readOnly") is True, "the cookie mount is not readOnly")
            expect(psc.get("fsGroup") == uid, "fsGroup must equal the user so a 0400 Secret file is readable")

    # metrics Service
    svc = [d for d in docs if d["kind"] == "Service"]
    expect(len(svc) == 1, "one metrics Service expected")
    if svc:
        s = svc[0]
        expect(s["spec"]["selector"].items() <= labels.items(), "the Service does not select the pods")
        expect(s["spec"].get("publishNotReadyAddresses") is True,
               "publishNotReadyAddresses: a worker that lost Redis is not ready and must still be scraped")
        ann = s["metadata"].get("annotations", {})
        expect(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == port,
               "scrape annotations missing or on another port")

    # KEDA authentication refers to existing Secret keys
    for ta in [d for d in docs if d["kind"] == "TriggerAuthentication"]:
        for ref in ta["spec"].get("secretTargetRef", []):
            expect(ref["key"] in secrets.get(ref["name"], {}), f"TriggerAuthentication: no key {ref['key']} in {ref['name']}")

    # everything in the namespace, the namespace restricted
    ns = dl.one(docs, "Namespace")
    for d in docs:
        if d["kind"] != "Namespace":
            expect(d["metadata"].get("namespace") == ns["metadata"]["name"], f"{d['kind']} {d['metadata']['name']} outside the namespace")

    # the image runs as the same numeric user
    stages, _ = dl.dockerfile_stages()
    users = [a for i, a in dl.stage_chain(stages) if i == "USER"]
    expect(users and users[-1].split(":")[0] == str(uid), f"Dockerfile USER {users[-1:]} != runAsUser {uid}")

    return checks.finish(f"{len(docs)} documents rendered; Deployment, Service, PDB, Secrets and KEDA objects agree")


if __name__ == "__main__":
    sys.exit(main())
