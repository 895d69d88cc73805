#!/usr/bin/env python3
"""Writes deploy/prometheus/rules.test.yaml (promtool unit tests of deploy/prometheus/rules.yaml).

The scenarios below (input series, evaluation times, expected labels and $value) are written by
hand; only the annotation text is copied from rules.yaml, with {{ $labels.x }} and {{ $value }}
filled in from the expected labels and value, because promtool compares annotations exactly.
Every alert has at least one case where it fires and one where it must not.

    python3 tests/deploy/gen_rules_test.py          # after editing rules.yaml or a scenario
    python3 tests/deploy/gen_rules_test.py --check  # (ctest) the committed file is up to date
    promtool test rules deploy/prometheus/rules.test.yaml
"""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml (PyYAML) is not installed")
    sys.exit(77)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules.yaml")
OUT = os.path.join(ROOT, "deploy", "prometheus", "rules.test.yaml")

W1 = 'job="dylive",instance="w1:9464"'
W2 = 'job="dylive",instance="w2:9464"'
L1 = {"job": "dylive", "instance": "w1:9464"}
I1 = {"instance": "w1:9464"}   # after sum by (instance)


def s(series, values):
    return {"series": series, "values": values}


def fires(alert, t, labels, value):
    return (alert, t, [(labels, value)])


def silent(alert, t):
    return (alert, t, [])


def pool(rooms_w1, rooms_w2, backlog, cap="200x40"):
    """Two workers: rooms held (live) per worker, the backlog both see, capacity 200 each."""
    return [
        s(f"up{{{W1}}}", "1x40"), s(f"up{{{W2}}}", "1x40"),
        s(f'dylive_rooms{{{W1},state="live"}}', rooms_w1),
        s(f'dylive_rooms{{{W2},state="live"}}', rooms_w2),
        s(f'dylive_rooms{{{W1},state="ended"}}', "3x40"),   # ended rooms hold no capacity
        s(f"dylive_rooms_capacity{{{W1}}}", cap), s(f"dylive_rooms_capacity{{{W2}}}", cap),
        s(f"dylive_assign_backlog{{{W1}}}", backlog), s(f"dylive_assign_backlog{{{W2}}}", backlog),
    ]


def hist(name, buckets):
    """buckets: {le: values}; the +Inf bucket and _count follow the last bucket."""
    out = [s(f'{name}_bucket{{{W1},le="{le}"}}', v) for le, v in buckets.items()]
    last = list(buckets.values())[-1]
    out.append(s(f'{name}_bucket{{{W1},le="+Inf"}}', last))
    out.append(s(f"{name}_count{{{W1}}}", last))
    return out


# (name, input series, [(alert, eval time, [(labels, $value)])])
GROUPS = [
    ("no workers: the only target goes down at 3m", [s(f"up{{{W1}}}", "1 1 1 0x10"),
                                                     s(f"dylive_rooms_capacity{{{W1}}}", "200x13")],
     [silent("DyliveNoWorkers", "2m"), silent("DyliveNoWorkers", "7m"),   # pending 4m < 5m
      fires("DyliveNoWorkers", "9m", {}, "1"),
      silent("DyliveWorkerDown", "7m"), fires("DyliveWorkerDown", "9m", L1, "0")]),
    ("no workers: up but zero capacity from 2m", [s(f"up{{{W1}}}", "1x12"),
                                                  s(f"dylive_rooms_capacity{{{W1}}}", "200 200 0x10")],
     [silent("DyliveNoWorkers", "6m"), fires("DyliveNoWorkers", "8m", {}, "0"),
      silent("DyliveWorkerDown", "8m")]),
    ("workers: one of two down", [s(f"up{{{W1}}}", "1 1 0x10"), s(f"up{{{W2}}}", "1x12"),
                                  s(f"dylive_rooms_capacity{{{W2}}}", "200x12")],
     [silent("DyliveNoWorkers", "10m"), fires("DyliveWorkerDown", "8m", L1, "0")]),

    ("backlog rising while every worker is full", pool("200x40", "200x40", "0 0 5+5x30"),
     [silent("DyliveBacklogRising", "1m"), silent("DyliveBacklogRising", "8m"),
      fires("DyliveBacklogRising", "20m", {}, "95"),
      silent("DyliveBacklogNotClaimed", "20m")]),
    ("backlog flat while every worker is full", pool("200x40", "200x40", "50x40"),
     [fires("DyliveBacklogRising", "15m", {}, "50")]),
    ("backlog rising, capacity free", pool("150x40", "200x40", "0 0 5+5x30"),
     [silent("DyliveBacklogRising", "20m"),
      fires("DyliveBacklogNotClaimed", "20m", {}, "95")]),
    ("backlog shrinking while every worker is full (the autoscaler keeps up)",
     pool("200x40", "200x40", "150-5x30"),
     [silent("DyliveBacklogRising", "20m")]),
    ("backlog empty, pool busy", pool("200x40", "120x40", "0x40"),
     [silent("DyliveBacklogRising", "20m"), silent("DyliveBacklogNotClaimed", "20m")]),
    ("a few rooms wait, capacity free, nobody claims", pool("10x40", "0x40", "3x40"),
     [silent("DyliveBacklogNotClaimed", "9m"), fires("DyliveBacklogNotClaimed", "12m", {}, "3")]),

    ("redis lost at 2m", [s(f"dylive_redis_connected{{{W1}}}", "1 1 0x8")],
     [silent("DyliveRedisDisconnected", "2m"),
      fires("DyliveRedisDisconnected", "3m", L1, "0")]),
    ("redis flapping", [s(f"dylive_redis_connected{{{W1}}}", "1 0 1 0 1 0 1 0 1 0")],
     [silent("DyliveRedisDisconnected", "3m"), silent("DyliveRedisDisconnected", "9m")]),

    ("redis refuses writes: OOM", [
        s(f'dylive_redis_errors_total{{{W1},kind="oom"}}', "0+10x20"),
        s(f'dylive_redis_errors_total{{{W1},kind="readonly"}}', "0x20"),
        s(f'dylive_redis_errors_total{{{W1},kind="moved"}}', "0+10x20")],
     [silent("DyliveRedisRefusingWrites", "4m"),
      fires("DyliveRedisRefusingWrites", "10m", {**I1, "kind": "oom"}, "0.16666666666666666")]),
    ("redis errors that are routine (cluster redirects)", [
        s(f'dylive_redis_errors_total{{{W1},kind="moved"}}', "0+10x20"),
        s(f'dylive_redis_errors_total{{{W1},kind="ask"}}', "0+10x20")],
     [silent("DyliveRedisRefusingWrites", "15m")]),

    ("spool growing from 2m", [s(f"dylive_spool_bytes{{{W1}}}", "0 0 1000+1000x40")],
     [silent("DyliveSpoolGrowing", "10m"), fires("DyliveSpoolGrowing", "25m", L1, "16.666666666666668")]),
    ("spool large but flat", [s(f"dylive_spool_bytes{{{W1}}}", "5000000x40")],
     [silent("DyliveSpoolGrowing", "30m")]),
    ("spool draining", [s(f"dylive_spool_bytes{{{W1}}}", "5000000-100000x40")],
     [silent("DyliveSpoolGrowing", "30m")]),

    ("one write gap at 3m", [s(f"dylive_write_gaps_total{{{W1}}}", "0 0 0 1x30")],
     [silent("DyliveWriteGaps", "2m"), fires("DyliveWriteGaps", "5m", L1, "1.5"),
      silent("DyliveWriteGaps", "30m")]),

    ("rooms reconnecting from 1m", [s(f'dylive_rooms{{{W1},state="reconnecting"}}', "0 2x20")],
     [silent("DyliveRoomStuckReconnecting", "10m"),
      fires("DyliveRoomStuckReconnecting", "12m", {**L1, "state": "reconnecting"}, "2")]),
    ("rooms reconnecting briefly, again and again",
     [s(f'dylive_rooms{{{W1},state="reconnecting"}}', "0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1")],
     [silent("DyliveRoomStuckReconnecting", "19m")]),

    ("a room in error", [s(f'dylive_rooms{{{W1},state="error"}}', "1x20")],
     [silent("DyliveRoomsInError", "14m"),
      fires("DyliveRoomsInError", "16m", {**L1, "state": "error"}, "1")]),
    ("no room in error", [s(f'dylive_rooms{{{W1},state="error"}}', "0x20"),
                          s(f'dylive_rooms{{{W1},state="live"}}', "50x20")],
     [silent("DyliveRoomsInError", "20m")]),

    ("handshakes refused, 2 a minute", [s(f"dylive_ws_rejected_total{{{W1}}}", "0+2x40")],
     [silent("DyliveHandshakesRejected", "10m"),
      fires("DyliveHandshakesRejected", "35m", I1, "30")]),
    ("a refused handshake now and then", [s(f"dylive_ws_rejected_total{{{W1}}}", "0+0.5x40")],
     [silent("DyliveHandshakesRejected", "35m")]),

    ("bad frames, 12 a minute", [s(f"dylive_bad_frames_total{{{W1}}}", "0+12x30")],
     [silent("DyliveBadFrames", "8m"), fires("DyliveBadFrames", "15m", I1, "0.2")]),
    ("bad frames, 3 a minute", [s(f"dylive_bad_frames_total{{{W1}}}", "0+3x30")],
     [silent("DyliveBadFrames", "25m")]),

    ("event delay: every event 30-60 s late",
     hist("dylive_event_delay_seconds", {"1": "0x30", "10": "0x30", "30": "0x30", "60": "0+10x30"}),
     [silent("DyliveEventDelayHigh", "8m"), fires("DyliveEventDelayHigh", "15m", I1, "59.7")]),
    ("event delay: under a second",
     hist("dylive_event_delay_seconds", {"1": "0+10x30", "10": "0+10x30", "30": "0+10x30", "60": "0+10x30"}),
     [silent("DyliveEventDelayHigh", "25m")]),
    ("event delay: no events", hist("dylive_event_delay_seconds", {"1": "0x30", "60": "0x30"}),
     [silent("DyliveEventDelayHigh", "25m")]),

    ("write latency: every write 1-5 s",
     hist("dylive_write_latency_seconds", {"0.1": "0x30", "1": "0x30", "5": "0+10x30"}),
     [silent("DyliveWriteLatencyHigh", "8m"), fires("DyliveWriteLatencyHigh", "15m", I1, "4.96")]),
    ("write latency: a few ms",
     hist("dylive_write_latency_seconds", {"0.01": "0+10x30", "0.1": "0+10x30", "1": "0+10x30", "5": "0+10x30"}),
     [silent("DyliveWriteLatencyHigh", "25m")]),

    ("ingest paused from 1m", [s(f"dylive_ingest_paused{{{W1}}}", "0 1x10")],
     [silent("DyliveIngestPaused", "5m"), fires("DyliveIngestPaused", "7m", L1, "1")]),
    ("ingest paused briefly", [s(f"dylive_ingest_paused{{{W1}}}", "0 1 1 0 1 1 0 1 1 0 1 1")],
     [silent("DyliveIngestPaused", "11m")]),

    ("file descriptors at 88 %", [s(f"process_open_fds{{{W1}}}", "900x10"),
                                  s(f"process_max_fds{{{W1}}}", "1024x10")],
     [silent("DyliveFileDescriptorsNearLimit", "4m"),
      fires("DyliveFileDescriptorsNearLimit", "6m", L1, "0.87890625")]),
    ("file descriptors at 10 %", [s(f"process_open_fds{{{W1}}}", "100x10"),
                                  s(f"process_max_fds{{{W1}}}", "1024x10")],
     [silent("DyliveFileDescriptorsNearLimit", "10m")]),
]

# Recording rules the dashboard and the autoscaler rely on, checked against the pool scenario.
RECORDING = [
    ("recording: rooms held, backlog and demand of a two-worker pool",
     pool("180x10", "120x10", "7x10"),
     [("dylive:rooms_held:sum", "5m", "300"),
      ("dylive:assign_backlog:max", "5m", "7"),
      ("dylive:rooms_demand:sum", "5m", "307"),
      ("dylive:rooms_capacity:sum", "5m", "400")]),
]


def humanize(v):
    f = float(v)
    return ("%.4g" % f) if f != int(f) else str(int(f))


def render(text, labels, value):
    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr[len("$labels."):], "")
        if expr == "$value":
            return value
        if expr == "$value | humanize":
            return humanize(value)
        raise SystemExit(f"template {expr!r} not handled by {__file__}")
    return re.sub(r"\{\{(.*?)\}\}", sub, text)


def main():
    rules = yaml.safe_load(open(RULES))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    covered_fire, covered_silent = set(), set()
    tests = []
    for name, series, cases in GROUPS:
        art = []
        for alert, t, exp in cases:
            rule = alerts[alert]
            exp_alerts = []
            for labels, value in exp:
                covered_fire.add(alert)
                lab = dict(labels)
                lab.update(rule.get("labels", {}))
                ann = {k: render(v, lab, value) for k, v in rule["annotations"].items()}
                exp_alerts.append({"exp_labels": lab, "exp_annotations": ann})
            if not exp:
                covered_silent.add(alert)
            art.append({"eval_time": t, "alertname": alert, "exp_alerts": exp_alerts})
        tests.append({"name": name, "interval": "1m", "input_series": series, "alert_rule_test": art})
    for name, series, exprs in RECORDING:
        pet = [{"expr": e, "eval_time": t, "exp_samples": [{"labels": '{__name__="%s"}' % e, "value": float(v)}]}
               for e, t, v in exprs]
        tests.append({"name": name, "interval": "1m", "input_series": series, "promql_expr_test": pet})
    missing = [a for a in alerts if a not in covered_fire or a not in covered_silent]
    if missing:
        raise SystemExit(f"alerts without a firing and a silent case: {missing}")
    doc = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    head = ("# promtool unit tests of rules.yaml: `promtool test rules rules.test.yaml`.\n"
            "# Written by tests/deploy/gen_rules_test.py (scenarios there, annotations copied from\n"
            "# rules.yaml); regenerate after editing either. Every alert fires in one case and\n"
            "# stays silent in another.\n")
    body = yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
    if "--check" in sys.argv:
        if open(OUT).read() != head + body:
            print(f"FAIL: {OUT} is not what {__file__} writes: run it after editing rules.yaml")
            return 1
        print(f"ok: {OUT} is up to date ({len(tests)} groups, {len(alerts)} alerts)")
        return 0
    with open(OUT, "w") as f:
        f.write(head + body)
    print(f"wrote {OUT}: {len(tests)} groups, {len(alerts)} alerts")


if __name__ == "__main__":
    sys.exit(main())
