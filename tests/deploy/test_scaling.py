#!/usr/bin/env python3
"""The KEDA ScaledObject of deploy/k8s scales right: checked against the RENDERED manifests.

1. The numbers agree: rooms per worker (DYLIVE_MAX_ROOMS) = the Prometheus trigger's threshold =
   the Redis trigger's listLength; the list is <DYLIVE_PREFIX>:assign; the target is the
   Deployment; minReplicaCount >= 1; AverageValue (with Value the HPA multiplies by the current
   replica count); ignoreNullValues "false"; no `fallback`; scale-down slowed by a
   stabilization window and at most one pod per period.
2. The Prometheus query means what the arithmetic below assumes: promtool evaluates it over
   pools of workers (rooms in every state, the backlog each worker sees, spools) and it must
   equal  max(f x (held + backlog), capacity if any spool is non-empty), with f its leading
   factor and held = rooms in every state but ended and stopped.
3. An HPA simulation (the Kubernetes algorithm: 10 % tolerance, max over metrics, no scale-down
   while a metric fails, stabilization windows, rate policies) replays a pool over time:
   busy pool with an empty backlog, a growing backlog, rooms ending (scale-down), a full pool
   with a small backlog, Prometheus down, Redis down with spools filling. Invariants: a
   scale-down never leaves fewer seats than rooms held; a busy pool with no backlog never
   changes size; a backlog is absorbed; scale-downs are paced.
4. The same simulation run on the old example (redis listLength "1" alone) must break the
   first invariant, so this test can tell a wrong ScaledObject from a right one.

usage: test_scaling.py KUBECTL PROMTOOL
"""
import math
import re
import sys

import deploylib as dl

TOLERANCE = 0.1          # kube-controller-manager --horizontal-pod-autoscaler-tolerance default
STEP = 15                # seconds: HPA sync period and the ScaledObject's pollingInterval


# ---------------------------------------------------------------------------------------------
# 1. the manifests

def config(docs):
    yaml_cm = [d for d in docs if d["kind"] == "ConfigMap" and "DYLIVE_MAX_ROOMS" in d.get("data", {})]
    if len(yaml_cm) != 1:
        raise SystemExit("FAIL: no single ConfigMap with DYLIVE_MAX_ROOMS")
    cm = yaml_cm[0]["data"]
    dep = dl.one(docs, "Deployment")
    so = dl.one(docs, "ScaledObject")
    spec = so["spec"]
    errors = []
    rooms = int(cm["DYLIVE_MAX_ROOMS"])
    prefix = cm.get("DYLIVE_PREFIX", "dylive")
    if spec["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        errors.append("scaleTargetRef does not name the Deployment")
    if "replicas" in dep["spec"]:
        errors.append("the Deployment sets replicas: every `kubectl apply` would fight the autoscaler")
    env_from = [e.get("configMapRef", {}).get("name") for c in dep["spec"]["template"]["spec"]["containers"]
                for e in c.get("envFrom", [])]
    if yaml_cm[0]["metadata"]["name"] not in env_from:
        errors.append("the Deployment does not take its environment from the ConfigMap with DYLIVE_MAX_ROOMS")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if lo < 1:
        errors.append(f"minReplicaCount {lo}: must be >= 1 (a pool at 0 claims nothing)")
    if "fallback" in spec:
        errors.append("fallback: would set a fixed replica count on errors, possibly below the rooms held")
    triggers = []
    for t in spec["triggers"]:
        md = t["metadata"]
        kind = t.get("metricType", "AverageValue")
        if t["type"] == "prometheus":
            if md.get("ignoreNullValues", "true").lower() != "false":
                errors.append('prometheus trigger: ignoreNullValues must be "false" (an empty answer is not 0 rooms)')
            triggers.append({"type": "prometheus", "kind": kind, "target": float(md["threshold"]),
                             "query": md["query"]})
            if float(md["threshold"]) != rooms:
                errors.append(f"prometheus threshold {md['threshold']} != DYLIVE_MAX_ROOMS {rooms}")
        elif t["type"] == "redis":
            triggers.append({"type": "redis", "kind": kind, "target": float(md["listLength"])})
            if md.get("listName") != f"{prefix}:assign":
                errors.append(f"redis listName {md.get('listName')} != {prefix}:assign")
            if float(md["listLength"]) != rooms:
                errors.append(f"redis listLength {md['listLength']} != DYLIVE_MAX_ROOMS {rooms}")
        else:
            errors.append(f"unexpected trigger {t['type']}")
        if kind != "AverageValue":
            errors.append(f"{t['type']} trigger: metricType {kind}; AverageValue gives ceil(metric / target) "
                          "replicas, Value gives ceil(current x metric / target)")
    if not any(t["type"] == "prometheus" for t in triggers):
        errors.append("no prometheus trigger: the rooms held are not in any metric")
    behavior = (spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {}))
    down = behavior.get("scaleDown", {})
    if down.get("stabilizationWindowSeconds", 300) < 300:
        errors.append("scaleDown.stabilizationWindowSeconds < 300")
    pods_policies = [p for p in down.get("policies", []) if p["type"] == "Pods"]
    if not pods_policies or any(p["value"] > 1 or p["periodSeconds"] < 60 for p in pods_policies) \
            or any(p["type"] != "Pods" for p in down.get("policies", [])):
        errors.append("scaleDown must remove at most 1 pod per period of >= 60 s (Pods policies only)")
    if errors:
        raise SystemExit("FAIL (manifests):\n  " + "\n  ".join(errors))
    return {"rooms": rooms, "min": lo, "max": hi, "triggers": triggers, "behavior": behavior}


# ---------------------------------------------------------------------------------------------
# 2. the query, evaluated by promtool

def factor(query):
    m = re.search(r"(\d+(?:\.\d+)?)\s*\*\s*\(", query)
    return float(m.group(1)) if m else 1.0


def model(f, held, backlog, capacity, spooling):
    """What the Prometheus trigger is meant to report."""
    return max(f * (held + backlog), capacity if spooling else 0)


POOLS = [
    # (name, [per worker: ({state: rooms}, spool bytes)], backlog, capacity per worker)
    ("busy, empty backlog", [({"live": 200, "reconnecting": 0}, 0), ({"live": 150, "error": 3}, 0)], 0, 200),
    ("every state", [({"claiming": 1, "starting": 2, "live": 100, "reconnecting": 4, "error": 5,
                       "watching": 6, "ended": 7, "stopped": 8}, 0)], 12, 200),
    ("backlog seen by three workers", [({"live": 200}, 0), ({"live": 200}, 0), ({"live": 199}, 0)], 350, 200),
    ("idle pool", [({"live": 0}, 0)], 0, 200),
    ("one worker spooling", [({"live": 20}, 0), ({"live": 10}, 123456), ({"live": 0}, 0)], 0, 200),
]


def check_query(promtool, query, f):
    tests = []
    for name, workers, backlog, cap in POOLS:
        series = []
        held = 0
        for i, (states, spool) in enumerate(workers):
            lab = f'job="dylive",instance="w{i}:9464"'
            for state, n in states.items():
                series.append({"series": f'dylive_rooms{{{lab},state="{state}"}}', "values": f"{n}x5"})
                held += n if state not in ("ended", "stopped") else 0
            series += [{"series": f"dylive_rooms_capacity{{{lab}}}", "values": f"{cap}x5"},
                       {"series": f"dylive_assign_backlog{{{lab}}}", "values": f"{backlog}x5"},
                       {"series": f"dylive_spool_bytes{{{lab}}}", "values": f"{spool}x5"}]
        want = model(f, held, backlog, cap * len(workers), any(s for _, s in workers))
        tests.append({"name": name, "interval": "1m", "input_series": series,
                      "promql_expr_test": [{"expr": query, "eval_time": "2m",
                                            "exp_samples": [{"labels": "{}", "value": want}]}]})
        print(f"  query over '{name}': expect {want:g} (held {held}, backlog {backlog})")
    ok, out = dl.promtool_test(promtool, {"tests": tests})
    if not ok:
        raise SystemExit("FAIL: the ScaledObject's query does not compute max(f x (held + backlog), "
                         "capacity while spooling):\n" + out)


# ---------------------------------------------------------------------------------------------
# 3. the HPA (k8s.io/kubernetes/pkg/controller/podautoscaler, autoscaling/v2 with behavior)

class HPA:
    def __init__(self, cfg):
        self.cfg = cfg
        self.recs = []            # (t, prenormalized recommendation)
        self.events = []          # (t, +n / -n)

    def proposal(self, trig, value, current):
        target = trig["target"]
        if trig["kind"] == "AverageValue":
            ratio = value / (target * current)
            return current if abs(1.0 - ratio) <= TOLERANCE else math.ceil(value / target)
        ratio = value / target                                          # metricType Value
        return current if abs(1.0 - ratio) <= TOLERANCE else math.ceil(ratio * current)

    def changed_in(self, period, now, sign):
        return sum(abs(n) for t, n in self.events if t > now - period and (n > 0) == (sign > 0))

    def step(self, now, current, metrics):
        """metrics: one value per trigger, None = the scaler failed. Returns the new replicas."""
        props = [self.proposal(t, v, current) for t, v in zip(self.cfg["triggers"], metrics) if v is not None]
        invalid = sum(v is None for v in metrics)
        if not props:
            return current
        desired = max(props)
        if invalid and desired < current:
            return current                                  # never scale down on partial metrics
        desired = min(max(desired, self.cfg["min"]), self.cfg["max"])
        b = self.cfg["behavior"]
        up, down = b.get("scaleUp", {}), b.get("scaleDown", {})
        up_w, down_w = up.get("stabilizationWindowSeconds", 0), down.get("stabilizationWindowSeconds", 300)
        self.recs = [(t, r) for t, r in self.recs if t > now - max(up_w, down_w, 1)]
        up_rec = min([r for t, r in self.recs if t > now - up_w] + [desired])
        down_rec = max([r for t, r in self.recs if t > now - down_w] + [desired])
        self.recs.append((now, desired))
        rec = min(max(current, up_rec), down_rec)
        if rec > current:
            limits = []
            for p in up.get("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                         {"type": "Pods", "value": 4, "periodSeconds": 15}]):
                start = current - self.changed_in(p["periodSeconds"], now, +1) + self.changed_in(p["periodSeconds"], now, -1)
                limits.append(start + p["value"] if p["type"] == "Pods" else math.ceil(start * (1 + p["value"] / 100)))
            limit = min(limits) if up.get("selectPolicy", "Max") == "Min" else max(limits)
            rec = min(rec, limit, self.cfg["max"])
        elif rec < current:
            limits = []
            for p in down.get("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}]):
                start = current - self.changed_in(p["periodSeconds"], now, +1) + self.changed_in(p["periodSeconds"], now, -1)
                limits.append(start - p["value"] if p["type"] == "Pods" else int(start * (1 - p["value"] / 100)))
            limit = max(limits) if down.get("selectPolicy", "Max") == "Min" else min(limits)
            rec = max(rec, limit, self.cfg["min"])
        if rec != current:
            self.events.append((now, rec - current))
        return rec


# ---------------------------------------------------------------------------------------------
# the pool

class Pool:
    def __init__(self, cfg, replicas, held):
        self.R = cfg["rooms"]
        self.workers = []
        self.backlog = held
        for _ in range(replicas):
            self.workers.append(0)
        self.claim()

    def claim(self):
        for i in range(len(self.workers)):
            take = min(self.R - self.workers[i], self.backlog)
            self.workers[i] += take
            self.backlog -= take

    @property
    def held(self):
        return sum(self.workers)

    def end_rooms(self, n):
        for i in sorted(range(len(self.workers)), key=lambda i: -self.workers[i]):
            k = min(n, self.workers[i])
            self.workers[i] -= k
            n -= k

    def resize(self, n):
        """Scale to n workers; a scale-down removes the BUSIEST worker (the worst case): it drains and
        its rooms go back to the head of the list. Returns the rooms handed back."""
        handed = 0
        while len(self.workers) > n:
            i = max(range(len(self.workers)), key=lambda i: self.workers[i])
            handed += self.workers.pop(i)
        self.backlog += handed
        while len(self.workers) < n:
            self.workers.append(0)
        return handed


def simulate(cfg, f, name, replicas, held, minutes, events=(), prometheus_down=(), spooling=(), quiet=False):
    """events: {minute: (assign, end)}; prometheus_down / spooling: minute ranges.
    Returns the list of (t, replicas, held, backlog) and the invariant violations."""
    hpa = HPA(cfg)
    pool = Pool(cfg, replicas, held)
    R = cfg["rooms"]
    trace, violations = [], []
    events = dict(events)
    for step in range(int(minutes * 60 / STEP)):
        now = step * STEP
        minute = now // 60
        if now % 60 == 0 and minute in events:
            assign, end = events[minute]
            pool.backlog += assign
            pool.end_rooms(end)
        pool.claim()
        cap = R * len(pool.workers)
        spool = any(a <= minute < b for a, b in spooling)
        metrics = []
        for t in cfg["triggers"]:
            if t["type"] == "prometheus":
                down = any(a <= minute < b for a, b in prometheus_down)
                metrics.append(None if down else model(f, pool.held, pool.backlog, cap, spool))
            else:
                metrics.append(pool.backlog)
        current = len(pool.workers)
        new = hpa.step(now, current, metrics)
        if new < current and new * R < pool.held:
            violations.append(f"t={now}s: scaled {current} -> {new} workers ({new * R} seats) while "
                              f"{pool.held} rooms are held")
        if new < current and spool:
            violations.append(f"t={now}s: scaled down while a worker's spool holds unsent events")
        pool.resize(new)
        trace.append((now, new, pool.held, pool.backlog))
    if not quiet:
        changes = [(t, r) for i, (t, r, h, b) in enumerate(trace) if i == 0 or r != trace[i - 1][1]]
        print(f"  {name}: replicas over time " + ", ".join(f"{t // 60}m{t % 60:02d}s={r}" for t, r in changes))
    return trace, violations


def scenarios(cfg, f):
    R = cfg["rooms"]
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    # busy pool, empty backlog: 5 x R seats, 950 rooms held, for 2 hours
    tr, v = simulate(cfg, f, "busy pool, empty backlog", 5, 950, 120)
    failures += v
    sizes = {r for t, r, h, b in tr}
    expect(all(r * R >= 950 for t, r, h, b in tr), "busy pool: fewer seats than rooms held")
    expect(len({r for t, r, h, b in tr[8:]}) == 1, f"busy pool: the size keeps changing {sorted(sizes)}")
    expect(all(b == 0 for t, r, h, b in tr), "busy pool: rooms left waiting")

    # growing backlog: 100 rooms assigned every minute for 20 minutes onto 2 workers
    tr, v = simulate(cfg, f, "growing backlog", 2, 300, 60, events={m: (100, 0) for m in range(20)})
    failures += v
    expect(tr[-1][3] == 0 and tr[-1][2] == 2300, f"growing backlog: not absorbed (held {tr[-1][2]}, "
                                                 f"backlog {tr[-1][3]})")
    waited = [t for t, r, h, b in tr if b > 0]
    expect(not waited or max(waited) <= 22 * 60, "growing backlog: rooms still waiting 2 minutes after the last burst")

    # scale-down: 10 workers hold 1900 rooms; 1200 end at minute 5
    tr, v = simulate(cfg, f, "rooms end, pool shrinks", 10, 1900, 90, events={5: (0, 1200)})
    failures += v
    downs = [t for i, (t, r, h, b) in enumerate(tr) if i and r < tr[i - 1][1]]
    # the last high recommendation was one step before the rooms ended (minute 5)
    window = cfg["behavior"]["scaleDown"].get("stabilizationWindowSeconds", 300)
    expect(downs and downs[0] >= 5 * 60 - STEP + window,
           "scale-down: started before the stabilization window passed")
    period = min(p["periodSeconds"] for p in cfg["behavior"]["scaleDown"]["policies"])
    expect(all(b - a >= period for a, b in zip(downs, downs[1:])), "scale-down: faster than one pod per period")
    expect(tr[-1][1] == max(cfg["min"], math.ceil(f * 700 / R)),
           f"scale-down: ended at {tr[-1][1]} workers for 700 rooms, want ceil({f:g} x 700 / {R})")
    expect(all(b == 0 for t, r, h, b in tr[-4:]), "scale-down: rooms left waiting after the drains")

    # full pool, small backlog: the HPA's 10 % tolerance must not leave rooms waiting
    tr, v = simulate(cfg, f, "full pool, small backlog", 10, 2000 + 150, 20)
    failures += v
    expect(tr[-1][3] == 0, f"full pool + 150 waiting: still {tr[-1][3]} waiting after 20 minutes "
                           "(the HPA tolerance swallowed the backlog)")

    # Prometheus unreachable for an hour while rooms end: no scale-down meanwhile
    tr, v = simulate(cfg, f, "Prometheus down", 8, 1500, 60, events={2: (0, 1200)}, prometheus_down=[(1, 61)])
    failures += v
    expect(all(r >= 8 for t, r, h, b in tr), "Prometheus down: the pool shrank on the backlog metric alone")

    # Redis down: spools fill for 30 minutes while rooms end; the pool keeps its size until they drain
    tr, v = simulate(cfg, f, "spools filling", 6, 1100, 60, events={2: (0, 800)}, spooling=[(1, 31)])
    failures += v
    expect(all(r >= 6 for t, r, h, b in tr if t < 31 * 60), "spooling: the pool shrank")

    # the arithmetic at a glance
    print("  held  backlog  R    -> replicas (>= ceil(held/R))")
    for held, backlog in [(0, 0), (1, 0), (200, 0), (950, 0), (950, 400), (2000, 150), (610, 0), (3999, 1)]:
        want = max(cfg["min"], math.ceil(f * (held + backlog) / R))
        print(f"  {held:5d} {backlog:7d}  {R} -> {want}")
        expect(want >= math.ceil(held / R), f"held {held}: {want} replicas cannot hold them")
    return failures


def main():
    kubectl = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "kubectl")
    promtool = dl.need_tool(sys.argv[2] if len(sys.argv) > 2 else None, "promtool")
    docs, _ = dl.render(kubectl)
    cfg = config(docs)
    query = [t for t in cfg["triggers"] if t["type"] == "prometheus"][0]["query"]
    f = factor(query)
    print(f"rooms per worker {cfg['rooms']}, replicas {cfg['min']}..{cfg['max']}, query factor {f:g}, "
          f"triggers {[t['type'] for t in cfg['triggers']]}")
    check_query(promtool, query, f)
    failures = scenarios(cfg, f)

    # 4. the old example must fail the same checks
    old = dict(cfg, triggers=[{"type": "redis", "kind": "AverageValue", "target": 1.0}], behavior={})
    _, v = simulate(old, f, "old example (listLength 1 alone), busy pool", 5, 950, 30)
    if not v:
        failures.append("the simulation did not catch the old listLength-1 ScaledObject draining busy workers")
    else:
        print(f"  old example caught: {v[0]}")

    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("ok: the ScaledObject never leaves fewer seats than rooms held, absorbs backlogs, "
          "scales down paced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
