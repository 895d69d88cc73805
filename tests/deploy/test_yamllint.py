#!/usr/bin/env python3
"""yamllint (deploy/.yamllint, --strict) over every YAML file under deploy/ and over the output
of `kubectl kustomize deploy/k8s`. A document with a duplicated key must fail the same check, so
the configuration is known to catch something.

usage: test_yamllint.py KUBECTL YAMLLINT
"""
import glob
import os
import subprocess
import sys
import tempfile

import deploylib as dl


def lint(yamllint, paths):
    p = subprocess.run([yamllint, "-c", os.path.join(dl.DEPLOY, ".yamllint"), "--strict", "-f", "parsable", *paths],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def main():
    kubectl = dl.need_tool(sys.argv[1] if len(sys.argv) > 1 else None, "kubectl")
    yamllint = dl.need_tool(sys.argv[2] if len(sys.argv) > 2 else None, "yamllint")
    _, rendered = dl.render(kubectl)
    files = sorted(glob.glob(os.path.join(dl.DEPLOY, "**", "*.yaml"), recursive=True)
                   + glob.glob(os.path.join(dl.DEPLOY, "**", "*.yml"), recursive=True))
    with tempfile.TemporaryDirectory(prefix="dylive-yamllint-") as tmp:
        out = os.path.join(tmp, "rendered.yaml")
        with open(out, "w") as f:
            f.write(rendered)
        rc, text = lint(yamllint, files + [out])
        print(f"yamllint --strict: {len(files)} files under deploy/ and the rendered kustomization "
              f"({rendered.count(chr(10))} lines): exit {rc}")
        if text:
            print(text)
        bad = os.path.join(tmp, "duplicate-key.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nkind: Secret\n")
        brc, btext = lint(yamllint, [bad])
        print(f"control: a duplicated key gives exit {brc}")
    if rc != 0:
        print("FAIL: yamllint found problems")
        return 1
    if brc == 0:
        print("FAIL: yamllint passed a document with a duplicated key")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
