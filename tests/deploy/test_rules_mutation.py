#!/usr/bin/env python3
"""The promtool rule tests can fail: every alert of deploy/prometheus/rules.yaml is mutated in
turn and rules.test.yaml must then FAIL.

  - expr replaced by one that never fires      -> its firing case must fail
  - expr replaced by one that always fires     -> its silent cases must fail
  - its `for:` removed (alerts that have one)  -> its "still pending" case must fail
and a rule file with a broken expression must fail `promtool check rules`.

usage: test_rules_mutation.py PROMTOOL          (exit 77 = skipped: PyYAML missing)
"""
import copy
import os
import subprocess
import sys
import tempfile

import deploylib as dl

yaml = dl.need_yaml()
PROM = os.path.join(dl.DEPLOY, "prometheus")


def only(tests, alert):
    """rules.test.yaml reduced to the cases of one alert (keeps each mutation run short)."""
    t = copy.deepcopy(tests)
    groups = []
    for g in t["tests"]:
        cases = [c for c in g.get("alert_rule_test", []) if c["alertname"] == alert]
        if cases:
            g["alert_rule_test"] = cases
            g.pop("promql_expr_test", None)
            groups.append(g)
    t["tests"] = groups
    return t


def run(promtool, workdir, rules, tests):
    with open(os.path.join(workdir, "rules.yaml"), "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False)
    with open(os.path.join(workdir, "rules.test.yaml"), "w") as f:
        yaml.safe_dump(tests, f, sort_keys=False)
    p = subprocess.run([promtool, "test", "rules", "rules.test.yaml"], cwd=workdir,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def main():
    promtool = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "promtool")
    rules = yaml.safe_load(open(os.path.join(PROM, "rules.yaml")))
    alerts = [(gi, ri, r["alert"]) for gi, g in enumerate(rules["groups"])
              for ri, r in enumerate(g["rules"]) if "alert" in r]
    assert alerts, "no alerts in rules.yaml"
    failures = []
    with tempfile.TemporaryDirectory(prefix="dylive-rules-") as tmp:
        tests = yaml.safe_load(open(os.path.join(PROM, "rules.test.yaml")))
        rc, out = run(promtool, tmp, rules, tests)
        if rc != 0:
            print(out)
            print("FAIL: the unmutated rules do not pass their tests")
            return 1
        for gi, ri, name in alerts:
            mutants = [("never fires", {"expr": "vector(1) > 2"}),
                       ("always fires", {"expr": "vector(1)"})]
            if "for" in rules["groups"][gi]["rules"][ri]:
                mutants.append(("without its for:", {"for": None}))
            mine = only(tests, name)
            for what, change in mutants:
                m = copy.deepcopy(rules)
                rule = m["groups"][gi]["rules"][ri]
                for k, v in change.items():
                    if v is None:
                        del rule[k]
                    else:
                        rule[k] = v
                rc, out = run(promtool, tmp, m, mine)
                verdict = "caught" if rc != 0 else "NOT CAUGHT"
                print(f"{name:34s} {what:18s} {verdict}")
                if rc == 0:
                    failures.append(f"{name} ({what})")

        broken = copy.deepcopy(rules)
        broken["groups"][-1]["rules"][0]["expr"] = "sum(dylive_rooms"
        ok, _ = dl.promtool_check_rules(promtool, broken)
        print(f"{'promtool check rules':34s} {'broken expr':18s} {'NOT CAUGHT' if ok else 'caught'}")
        if ok:
            failures.append("promtool check rules accepted a broken expression")
    if failures:
        print("FAIL: mutations the tests did not catch: " + ", ".join(failures))
        return 1
    print(f"ok: {len(alerts)} alerts, every mutation caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
