#!/usr/bin/env python3
"""deploy/systemd/dylive-connector@.service passes `systemd-analyze verify` with no warning (the
unit rendered with ExecStart pointing at the built binary, since verify checks it exists), has the
directives the drain and the hardening rely on, and scores an exposure of 2.0 or better in
`systemd-analyze security --offline`. A copy with a misspelt directive must be flagged, so the
warning check itself is known to work.

usage: test_systemd.py SYSTEMD_ANALYZE BUILD_DIR/dylive-connector
"""
import os
import re
import subprocess
import sys
import tempfile

import deploylib as dl

UNIT = os.path.join(dl.DEPLOY, "systemd", "dylive-connector@.service")
REQUIRED = {
    "KillSignal": "SIGTERM", "TimeoutStopSec": "15", "Restart": "on-failure",
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
}
MAX_EXPOSURE = 20          # systemd-analyze security --threshold: 2.0 on its 0-10 scale


def verify(analyze, path):
    p = subprocess.run([analyze, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    name = os.path.basename(path).split("@")[0]
    warnings = [line for line in p.stdout.splitlines() if name in line]
    return p.returncode, warnings, p.stdout


def main():
    analyze = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "systemd-analyze")
    binary = sys.argv[2]
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"FAIL: {binary} is not built")
    text = open(UNIT).read()
    checks = dl.Checks()
    errors = checks.errors
    directives = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            directives.setdefault(m.group(1), []).append(m.group(2))
    for k, v in REQUIRED.items():
        if v not in directives.get(k, []):
            errors.append(f"{k}={v} missing")
    if not any(s.startswith("dylive") for s in directives.get("StateDirectory", [])):
        errors.append("StateDirectory= missing (the spool)")
    spool = directives.get("Environment", [])
    if not any(e.startswith("DYLIVE_SPOOL_DIR=/var/lib/dylive") for e in spool):
        errors.append("DYLIVE_SPOOL_DIR is not in the state directory")

    with tempfile.TemporaryDirectory(prefix="dylive-systemd-") as tmp:
        rendered = text.replace("/usr/local/bin/dylive-connector", os.path.abspath(binary))
        for name in ("dylive-connector@.service", "dylive-connector@1.service"):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(rendered)
        for name in ("dylive-connector@.service", "dylive-connector@1.service"):
            rc, warnings, out = verify(analyze, os.path.join(tmp, name))
            print(f"systemd-analyze verify {name}: exit {rc}, {len(warnings)} warnings")
            if rc != 0 or warnings:
                errors.append(f"verify {name}:\n{out}")

        bad = rendered.replace("KillSignal=SIGTERM", "KillSignal=SIGTERM\nTimeoutStopSecs=15")
        with open(os.path.join(tmp, "dylive-bad@1.service"), "w") as f:
            f.write(bad)
        rc, warnings, out = verify(analyze, os.path.join(tmp, "dylive-bad@1.service"))
        print(f"control: a misspelt directive gives exit {rc}, warnings {warnings}")
        if rc == 0 and not warnings:
            errors.append("a unit with a misspelt directive passed: the warning check does not work")

        p = subprocess.run([analyze, "security", "--offline=true", f"--threshold={MAX_EXPOSURE}",
                            os.path.join(tmp, "dylive-connector@1.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if "unrecognized option" in p.stdout or "Unknown option" in p.stdout:
            print("note: this systemd-analyze has no --offline security check (systemd < 250)")
        else:
            level = re.findall(r"Overall exposure level for \S+: (\S+ \S+)", p.stdout)
            print(f"systemd-analyze security --offline: exposure {level[0] if level else '?'} "
                  f"(threshold {MAX_EXPOSURE / 10:.1f})")
            if p.returncode != 0:
                errors.append("exposure above the threshold:\n" + p.stdout[-2000:])
    return checks.finish("the unit verifies clean and is hardened")


if __name__ == "__main__":
    sys.exit(main())
