#!/usr/bin/env python3
"""deploy/docker/Dockerfile has what issue 12 asks, read without a Docker daemon:

- a Debian 12 base chosen by `ARG BASE` (debian:bookworm-slim by default), multi-stage;
- the builder installs the -dev packages and builds with CMake in Release;
- the default target (the last stage) installs no -dev package and no compiler, but every
  Debian package that provides a shared library the built binaries link (objdump NEEDED, owner
  found with dpkg -S), has a numeric non-root USER, STOPSIGNAL SIGTERM, EXPOSE of the admin
  port, a HEALTHCHECK on /healthz with a tool the image installs, the exec-form ENTRYPOINT of the
  worker, DYLIVE_ADMIN bound beyond loopback, a VOLUME at DYLIVE_SPOOL_DIR, and dylivectl;
- a try-out target with the simulator, and .dockerignore keeping build trees and .git out.

usage: test_dockerfile.py BUILD_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

import deploylib as dl

RUNTIME_LIBS = {"libhiredis0.14", "libevent-2.1-7", "libevent-pthreads-2.1-7", "libwebsockets17",
                "libprotobuf-c1", "libcjson1", "libcurl4", "zlib1g", "libdeflate0", "libssl3", "ca-certificates",
                "libev4", "libwebsockets-evlib-ev"}  # the WebSocket thread's epoll loop (lws loads the plugin)
IN_EVERY_DEBIAN = {"libc6", "libgcc-s1"}


def apt_packages(instructions):
    pkgs = set()
    for instr, args in instructions:
        if instr != "RUN":
            continue
        for m in re.finditer(r"apt-get install ((?:\s*[-\w.+:=]+)+)", args):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def needed_packages(binaries):
    """Debian packages owning the shared libraries the binaries link directly (None: tools missing)."""
    if not shutil.which("objdump") or not shutil.which("dpkg"):
        return None
    sonames = set()
    for b in binaries:
        out = subprocess.run(["objdump", "-p", b], stdout=subprocess.PIPE, text=True, check=True).stdout
        sonames |= set(re.findall(r"NEEDED\s+(\S+)", out))
    p = subprocess.run(["dpkg", "-S", *[f"*/{s}" for s in sorted(sonames)]], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    pkgs = {s: set() for s in sonames}
    for line in p.stdout.splitlines():          # "pkg1:amd64, pkg2:amd64: /path/to/lib.so.1"
        owners, _, path = line.rpartition(": ")
        name = os.path.basename(path)
        if name in pkgs:
            pkgs[name] |= {o.strip().split(":")[0] for o in owners.split(",")} - {""}
    pkgs = {s: {o for o in owners if not o.endswith("-dev")} for s, owners in pkgs.items()}
    return pkgs


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(dl.ROOT, "build")
    stages, glob = dl.dockerfile_stages()
    checks = dl.Checks()
    expect, errors = checks.expect, checks.errors

    args = dict(a.split("=", 1) for i, a in glob if i == "ARG" and "=" in a)
    expect(re.fullmatch(r"debian:bookworm(-slim)?", args.get("BASE", "")),
           f"ARG BASE before the first FROM must default to debian:bookworm(-slim), is {args.get('BASE')}")
    names = [s[0] for s in stages]
    for name, base, _ in stages:
        expect(base in ("${BASE}", "$BASE") or base in names, f"stage {name} is FROM {base}, neither ${{BASE}} nor a stage")
    expect(len(stages) >= 2, "not multi-stage")

    builder = next((s for s in stages if s[0] == "builder"), None)
    expect(builder is not None, "no stage named builder")
    if builder:
        bp = apt_packages(builder[2])
        for p in ("cmake", "libhiredis-dev", "libevent-dev", "libwebsockets-dev", "libev-dev", "libprotobuf-c-dev",
                  "protobuf-c-compiler", "libcjson-dev", "libcurl4-openssl-dev", "zlib1g-dev", "libdeflate-dev", "libssl-dev"):
            expect(p in bp, f"builder does not install {p}")
        runs = " ".join(a for i, a in builder[2] if i == "RUN")
        expect(re.search(r"cmake .*-DCMAKE_BUILD_TYPE=Release", runs), "builder does not configure CMake in Release")

    final = dl.stage_chain(stages)              # the default target and its parents
    by = {}
    for instr, a in final:
        by.setdefault(instr, []).append(a)
    rp = apt_packages(final)
    for p in RUNTIME_LIBS:
        expect(p in rp, f"runtime does not install {p}")
    dev = sorted(p for p in rp if p.endswith("-dev") or p in ("build-essential", "cmake", "gcc", "pkg-config"))
    expect(not dev, f"runtime installs build tools: {dev}")
    user = (by.get("USER") or [""])[-1]
    expect(re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER {user!r} is not numeric and non-root")
    expect((by.get("STOPSIGNAL") or [""])[-1] == "SIGTERM", "STOPSIGNAL SIGTERM missing")
    expect("9464" in " ".join(by.get("EXPOSE", [])), "EXPOSE 9464 missing")
    hc = (by.get("HEALTHCHECK") or [""])[-1]
    expect("/healthz" in hc, "HEALTHCHECK does not probe /healthz")
    tool = re.search(r"CMD\s+\[?\"?(\w+)", hc)
    expect(tool and (tool.group(1) in rp or tool.group(1) in ("dylive-connector", "dylivectl")),
           f"HEALTHCHECK uses {tool.group(1) if tool else '?'}, which the runtime does not install")
    ep = (by.get("ENTRYPOINT") or ["[]"])[-1]
    expect(json.loads(ep) == ["/usr/local/bin/dylive-connector"], f"ENTRYPOINT {ep}")
    env = " ".join(by.get("ENV", []))
    expect(re.search(r"DYLIVE_ADMIN=0\.0\.0\.0:9464", env), "ENV DYLIVE_ADMIN=0.0.0.0:9464 missing")
    spool = re.search(r"DYLIVE_SPOOL_DIR=(\S+)", env)
    expect(spool and spool.group(1) in " ".join(by.get("VOLUME", [])), "no VOLUME at DYLIVE_SPOOL_DIR")
    copies = " ".join(by.get("COPY", []))
    expect("dylivectl" in copies and "dylive-connector" in copies, "the worker image lacks dylive-connector or dylivectl")
    tryout = [s for s in stages if "dylive-sim" in " ".join(a for i, a in dl.stage_chain(stages, s[0]) if i == "COPY")]
    expect(tryout, "no target carries the simulator (dylive-sim)")

    ignore = open(os.path.join(dl.ROOT, ".dockerignore")).read().split()
    for p in (".git", "build", "build-*"):
        expect(p in ignore, f".dockerignore does not exclude {p}")

    bins = [os.path.join(build, b) for b in ("dylive-connector", "dylivectl")]
    if all(os.path.exists(b) for b in bins):
        needed = needed_packages(bins)
        if needed is None:
            print("note: objdump or dpkg missing, linked libraries not compared")
        else:
            for soname, owners in sorted(needed.items()):
                ok = owners & (rp | IN_EVERY_DEBIAN)
                print(f"  {soname:24s} {', '.join(sorted(owners)) or '?':28s} {'in the image' if ok else 'MISSING'}")
                expect(ok, f"{soname} ({', '.join(sorted(owners)) or 'owner unknown'}) is not installed in the runtime")
    else:
        print(f"note: {build} has no binaries, linked libraries not compared")

    return checks.finish(f"stages {names}; default target {names[-1]} runs as {user}")


if __name__ == "__main__":
    sys.exit(main())
