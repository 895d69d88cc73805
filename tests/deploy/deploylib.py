"""Shared by the tests of deploy/: paths, skipping, rendering the kustomization, promtool runs."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
SKIP = 77          # ctest SKIP_RETURN_CODE


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def need_yaml():
    try:
        import yaml
        return yaml
    except ImportError:
        skip("python3-yaml (PyYAML) is not installed; scripts/deps.sh installs it")


def need_tool(path, what):
    if not path or not os.path.exists(path):
        skip(f"{what} not found ({path or 'not given'}); scripts/deps.sh installs it")
    return path


def render(kubectl):
    """`kubectl kustomize deploy/k8s` as a list of documents."""
    yaml = need_yaml()
    p = subprocess.run([kubectl, "kustomize", os.path.join(DEPLOY, "k8s")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit("FAIL: kubectl kustomize deploy/k8s failed")
    return [d for d in yaml.safe_load_all(p.stdout) if d], p.stdout


def one(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise SystemExit(f"FAIL: expected one {kind} {name or ''} in the rendered manifests, found {len(found)}")
    return found[0]


def promtool_check_rules(promtool, rules):
    """`promtool check rules` on a rules document (dict); returns (ok, output)."""
    import json
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(rules, f)                                         # JSON is YAML
    try:
        p = subprocess.run([promtool, "check", "rules", f.name], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    finally:
        os.unlink(f.name)
    return p.returncode == 0, p.stdout


def promtool_test(promtool, tests, rules=None):
    """`promtool test rules` on a test document (dict) with an optional rules document; returns
    (ok, output)."""
    import json
    with tempfile.TemporaryDirectory(prefix="dylive-promtool-") as tmp:
        doc = dict(tests)
        if rules is not None:
            with open(os.path.join(tmp, "rules.yaml"), "w") as f:
                json.dump(rules, f)
            doc["rule_files"] = ["rules.yaml"]
        else:
            doc.setdefault("rule_files", [])
        with open(os.path.join(tmp, "test.yaml"), "w") as f:
            json.dump(doc, f)
        p = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode == 0, p.stdout


def dockerfile_stages(path=None):
    """deploy/docker/Dockerfile as [(stage name, FROM image, [(INSTRUCTION, arguments)])], with
    continuation lines joined and comments dropped; plus the global ARGs before the first FROM."""
    import re
    text = open(path or os.path.join(DEPLOY, "docker", "Dockerfile")).read()
    text = re.sub(r"\\\n", " ", text)
    stages, glob = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            stages.append((m.group(2) or str(len(stages)), m.group(1), []))
        elif stages:
            stages[-1][2].append((instr, args.strip()))
        else:
            glob.append((instr, args.strip()))
    return stages, glob


def stage_chain(stages, name=None):
    """The instructions that make a stage (default: the last), its parents' first."""
    by = {s[0]: s for s in stages}
    s = by[name] if name else stages[-1]
    chain = []
    while s:
        chain.insert(0, s)
        s = by.get(s[1])
    return [i for st in chain for i in st[2]]


class Checks:
    """Collects failed expectations; finish() prints them (or the ok line) and gives the exit code."""

    def __init__(self):
        self.errors = []

    def expect(self, cond, what):
        if not cond:
            self.errors.append(what)
        return cond

    def finish(self, ok):
        if self.errors:
            print("FAIL:\n  " + "\n  ".join(self.errors))
            return 1
        print(f"ok: {ok}")
        return 0
