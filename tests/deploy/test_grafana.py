#!/usr/bin/env python3
"""deploy/grafana/dylive.json: valid JSON, the datasource is a variable (no fixed uid), and every
metric a panel queries is one the worker exports (the list below, issue 12) or Prometheus' `up`.
Every query (Grafana variables substituted) must also parse as PromQL (promtool). The same metric
check runs over deploy/prometheus/rules.yaml. Without promtool or PyYAML the test is skipped.

usage: test_grafana.py [PROMTOOL]
"""
import json
import os
import re
import sys

import deploylib as dl

DASH = os.path.join(dl.DEPLOY, "grafana", "dylive.json")

# The worker's metrics (issue 12 and the existing ones); histograms add _bucket/_sum/_count.
EXPORTED = {
    "dylive_rooms", "dylive_rooms_capacity", "dylive_assign_backlog", "dylive_redis_connected",
    "dylive_events_written_total", "dylive_build_info",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
    "process_max_fds", "process_start_time_seconds",
    "dylive_spool_bytes", "dylive_redis_pending", "dylive_bad_frames_total",
    "dylive_ws_disconnects_total", "dylive_ws_rejected_total", "dylive_redis_errors_total",
    "dylive_leases_lost_total", "dylive_write_gaps_total", "dylive_ingest_paused",
}
HISTOGRAMS = {"dylive_write_latency_seconds", "dylive_event_delay_seconds"}
FROM_PROMETHEUS = {"up"}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                 # string literals
    e = re.sub(r"\$\{?\w+\}?", "1m", e)                           # Grafana variables
    e = re.sub(r"\{[^}]*\}", "", e)                               # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                              # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue                                              # a function or a keyword
        if re.fullmatch(r"\d+[smhdwy]", word) or e[m.start() - 1:m.start()].isdigit():
            continue
        names.add(word)
    return names


def known(name):
    if name in EXPORTED or name in FROM_PROMETHEUS:
        return True
    for h in HISTOGRAMS:
        if name in (h + "_bucket", h + "_sum", h + "_count"):
            return True
    return False


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def main():
    checks = dl.Checks()
    errors = checks.errors
    with open(DASH) as f:
        dash = json.load(f)                                      # must be valid JSON
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    dsvar = [v for v in variables.values() if v.get("type") == "datasource"]
    if not dsvar or dsvar[0].get("query") != "prometheus":
        errors.append("no datasource variable of type prometheus in templating")
    dsref = "${%s}" % dsvar[0]["name"] if dsvar else None

    exprs, used = [], set()
    for p in walk_panels(dash.get("panels", [])):
        if p.get("type") == "row":
            continue
        for obj in [p] + p.get("targets", []):
            ds = obj.get("datasource")
            if isinstance(ds, dict) and ds.get("uid") != dsref:
                errors.append(f"panel {p.get('title')!r}: datasource uid {ds.get('uid')!r} is not {dsref}")
            if isinstance(ds, str) and ds != dsref:
                errors.append(f"panel {p.get('title')!r}: datasource {ds!r} is not {dsref}")
        targets = p.get("targets", [])
        if not targets:
            errors.append(f"panel {p.get('title')!r} has no query")
        for t in targets:
            e = t.get("expr", "")
            exprs.append(e)
            for name in metric_names(e):
                used.add(name)
                if not known(name):
                    errors.append(f"panel {p.get('title')!r} queries {name!r}, which no worker exports")
    for v in variables.values():
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            for name in re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", q):
                if not known(name):
                    errors.append(f"variable {v['name']} queries {name!r}")

    for need in ("dylive_rooms", "dylive_events_written_total", "dylive_write_latency_seconds_bucket",
                 "dylive_event_delay_seconds_bucket", "dylive_assign_backlog", "dylive_rooms_capacity",
                 "dylive_spool_bytes", "dylive_redis_connected", "process_resident_memory_bytes",
                 "process_cpu_seconds_total"):
        if need not in used:
            errors.append(f"no panel shows {need}")

    yaml = dl.need_yaml()
    rules = yaml.safe_load(open(os.path.join(dl.DEPLOY, "prometheus", "rules.yaml")))
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for g in rules["groups"]:
        for r in g["rules"]:
            for name in metric_names(r["expr"]):
                if not known(name) and name not in recorded:
                    errors.append(f"rules.yaml {r.get('alert') or r.get('record')} uses {name!r}, "
                                  "which no worker exports")

    if exprs:
        promtool = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "promtool")
        rules = {"groups": [{"name": "grafana", "rules": [
            {"record": f"dashboard:query{i}", "expr": re.sub(r"\$\{?\w+\}?", lambda m: ".*" if "instance" in m.group(0) else "5m", e)}
            for i, e in enumerate(exprs)]}]}
        ok, out = dl.promtool_check_rules(promtool, rules)
        if not ok:
            errors.append("a dashboard query is not valid PromQL:\n" + out)

    return checks.finish(f"{len(exprs)} queries over {len(used)} metrics, all exported; datasource {dsref}")


if __name__ == "__main__":
    sys.exit(main())
