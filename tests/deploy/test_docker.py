#!/usr/bin/env python3
"""Builds the images of deploy/docker/Dockerfile and runs the compose try-out. Heavy (a few
minutes with a warm cache, ~10 without), so only with DYLIVE_TEST_DOCKER=1; skipped otherwise, or
when no Docker daemon answers.

  - the worker image: `--version` runs, it is USER 10001:10001, STOPSIGNAL SIGTERM, exposes 9464,
    has a /healthz HEALTHCHECK that turns healthy, and `docker stop` drains it: exit 0 in < 12 s;
  - deploy/compose.yaml: Redis (AOF), the simulator, three workers and the one-shot assignment:
    the room's events reach Redis, three workers register, stopping the room's worker hands the
    room to another within seconds and its events keep coming.

Environment: DYLIVE_DOCKER_BASE (the Dockerfile's BASE, default debian:bookworm-slim; offline use
a base made with mmdebstrap, deploy/README.md), DYLIVE_DOCKER_NETWORK (e.g. "host" when the
daemon has no default bridge), DOCKER (the CLI, default docker).

usage: DYLIVE_TEST_DOCKER=1 test_docker.py
"""
import json
import os
import shutil
import subprocess
import sys
import time

import deploylib as dl

DOCKER = os.environ.get("DOCKER", "docker")
BASE = os.environ.get("DYLIVE_DOCKER_BASE", "debian:bookworm-slim")
NETWORK = os.environ.get("DYLIVE_DOCKER_NETWORK")
COMPOSE_FILE = os.path.join(dl.DEPLOY, "compose.yaml")
PROJECT = "dylivetest"
LIVE_ID = "261378947940"
IMAGES = {"runtime": "dylive-connector:tryout", "tryout": "dylive-tryout:tryout", "redis": "dylive-redis:tryout"}


def sh(*cmd, check=True, timeout=None, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}\n{p.stdout[-3000:]}")
    return p.stdout


def compose_cmd():
    if subprocess.run([DOCKER, "compose", "version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        return [DOCKER, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def wait(what, fn, seconds):
    end = time.time() + seconds
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(1)
    raise SystemExit(f"FAIL: {what} within {seconds} s")


def main():
    if os.environ.get("DYLIVE_TEST_DOCKER") != "1":
        dl.skip("image build and compose try-out run only with DYLIVE_TEST_DOCKER=1 (heavy; see deploy/README.md)")
    if not shutil.which(DOCKER):
        dl.skip(f"no {DOCKER} CLI")
    info = subprocess.run([DOCKER, "info", "--format", "{{.ServerVersion}}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if info.returncode != 0:
        dl.skip(f"the Docker daemon does not answer: {info.stdout.strip().splitlines()[-1:]}")
    print(f"docker daemon {info.stdout.strip()}, base {BASE}")

    # images (the tags compose.yaml names, so `up --no-build` uses them)
    for target, tag in IMAGES.items():
        cmd = [DOCKER, "build", "-q", "-f", os.path.join(dl.DEPLOY, "docker", "Dockerfile"),
               "--build-arg", f"BASE={BASE}", "--target", target, "-t", tag]
        if NETWORK:
            cmd += ["--network", NETWORK]
        t0 = time.time()
        sh(*cmd, dl.ROOT, timeout=1800, env=dict(os.environ, DOCKER_BUILDKIT=os.environ.get("DOCKER_BUILDKIT", "0")))
        print(f"built {tag} (target {target}) in {time.time() - t0:.0f} s")

    image = IMAGES["runtime"]
    cfg = json.loads(sh(DOCKER, "image", "inspect", image))[0]["Config"]
    checks = dl.Checks()
    errors = checks.errors
    if cfg.get("User") != "10001:10001":
        errors.append(f"User {cfg.get('User')}")
    if cfg.get("StopSignal") != "SIGTERM":
        errors.append(f"StopSignal {cfg.get('StopSignal')}")
    if "9464/tcp" not in (cfg.get("ExposedPorts") or {}):
        errors.append("9464/tcp not exposed")
    if "/healthz" not in " ".join((cfg.get("Healthcheck") or {}).get("Test", [])):
        errors.append("no /healthz health check")
    out = sh(DOCKER, "run", "--rm", "--network", "none", image, "--version").strip()
    print(f"docker run {image} --version: {out}")
    if not out.startswith("dylive-connector "):
        errors.append(f"--version printed {out!r}")

    # health check and drain, alone (no Redis reachable: /healthz is still 200)
    name = f"{PROJECT}-alone"
    subprocess.run([DOCKER, "rm", "-fv", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh(DOCKER, "run", "-d", "--name", name, "--network", "none", "--read-only",
       "-e", "DYLIVE_REDIS_URL=redis://127.0.0.1:1/0", "--health-interval", "2s", image)
    try:
        wait("the container turning healthy",
             lambda: sh(DOCKER, "inspect", "-f", "{{.State.Health.Status}}", name).strip() == "healthy", 60)
        t0 = time.time()
        sh(DOCKER, "stop", "-t", "15", name)
        took = time.time() - t0
        code = sh(DOCKER, "inspect", "-f", "{{.State.ExitCode}}", name).strip()
        print(f"healthy; docker stop took {took:.1f} s, exit {code}")
        if code != "0" or took > 12:
            errors.append(f"docker stop: exit {code} after {took:.1f} s (want 0 within the 10 s drain)")
    finally:
        subprocess.run([DOCKER, "rm", "-fv", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # the compose try-out
    compose = compose_cmd()
    if not compose:
        errors.append("no `docker compose` or `docker-compose` to run deploy/compose.yaml")
    else:
        c = compose + ["-f", COMPOSE_FILE, "-p", PROJECT]
        env = dict(os.environ, DYLIVE_BASE=BASE)

        def redis(*args):
            return sh(*c, "exec", "-T", "redis", "redis-cli", *args, env=env).strip()

        def room(field):
            return redis("HGET", f"dylive:{{{LIVE_ID}}}:status", field)

        def xlen():
            return int(redis("XLEN", f"dylive:{{{LIVE_ID}}}:events") or 0)
        try:
            sh(*c, "up", "-d", "--no-build", env=env, timeout=300)
            n = wait("events in Redis", lambda: xlen() > 20 and xlen(), 90)
            wait("three workers registered", lambda: redis("ZCARD", "dylive:workers") == "3", 30)
            workers = 3
            owner = room("worker")
            print(f"compose: {n} events, {workers} workers, room held by {owner}, "
                  f"AOF {redis('CONFIG', 'GET', 'appendonly').split()[-1]}")
            t0 = time.time()
            sh(*c, "stop", "-t", "15", owner, env=env)
            took = time.time() - t0
            new = wait("another worker taking the room",
                       lambda: room("state") == "live" and room("worker") not in ("", owner) and room("worker"), 20)
            before = xlen()
            after = wait("events after the handover", lambda: xlen() > before and xlen(), 30)
            print(f"stopped {owner} in {took:.1f} s; room now on {new}; events {before} -> {after}")
            if took > 12:
                errors.append(f"stopping {owner} took {took:.1f} s")
        finally:
            if errors:
                print(sh(*c, "logs", "--tail", "30", env=env, check=False)[-4000:])
            sh(*c, "down", "-v", env=env, check=False, timeout=120)

    return checks.finish("images built and run; the compose try-out captures, drains and hands over")


if __name__ == "__main__":
    sys.exit(main())
