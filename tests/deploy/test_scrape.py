#!/usr/bin/env python3
"""deploy/prometheus/scrape.yaml is a valid Prometheus configuration (`promtool check config`,
its rule_files pointed at deploy/prometheus/rules.yaml) with a job named dylive, which the alerts
and the dashboard select.

usage: test_scrape.py PROMTOOL
"""
import os
import re
import subprocess
import sys
import tempfile

import deploylib as dl


def main():
    promtool = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "promtool")
    text = open(os.path.join(dl.DEPLOY, "prometheus", "scrape.yaml")).read()
    if not re.search(r"^\s*- job_name: dylive\s*$", text, re.M):
        print("FAIL: no scrape job named dylive")
        return 1
    rules = os.path.join(dl.DEPLOY, "prometheus", "rules.yaml")
    text = re.sub(r"/etc/prometheus/dylive-rules.yaml", rules, text)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        p = subprocess.run([promtool, "check", "config", f.name], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    finally:
        os.unlink(f.name)
    print(p.stdout)
    return 0 if p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
