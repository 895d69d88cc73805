"""Real Redis topologies on loopback for the tests and benchmarks: a TLS server with a private CA,
a Sentinel set (primary, replica, three sentinels) and a Cluster, plus small helpers to query them."""
import os
import socket
import subprocess

from harness import Redis, RespError, check, free_port, redis_ready, wait_until


def make_pki(d):
    """A private CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True, cwd=d)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=dylive test CA")
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj",
             "/CN=" + ("localhost" if name == "server" else "dylive-worker"))
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
             name + ".pem", "-days", "2", "-extfile", "san.cnf")
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def start_tls_redis(env, pki, auth_clients):
    port = free_port()
    d = os.path.join(env.tmp, "redis-tls")
    os.makedirs(d, exist_ok=True)
    env.spawn(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--tls-cert-file", pki["server.pem"], "--tls-key-file", pki["server.key"], "--tls-ca-cert-file",
               pki["ca.pem"], "--tls-auth-clients", "yes" if auth_clients else "no", "--dir", d], "redis-tls.log")
    # plain connections are refused by a TLS port; readiness = the port accepts
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "--tls", "--cacert", pki["ca.pem"], "--cert",
                                       pki["client.pem"], "--key", pki["client.key"], "PING"],
                                      capture_output=True, text=True).stdout.strip() == "PONG", 10, "TLS redis up")
    return port


def tls_cli(port, pki, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), "--tls", "--cacert", pki["ca.pem"], "--cert", pki["client.pem"],
                          "--key", pki["client.key"], "--no-raw"] + list(args), capture_output=True, text=True)
    return out.stdout


def start_sentinel_set(env):
    """A primary, a replica and three sentinels watching 'mymaster'."""
    p1, p2 = free_port(), free_port()
    for port, extra in ((p1, []), (p2, ["--replicaof", "127.0.0.1", str(p1)])):
        d = os.path.join(env.tmp, "r%d" % port)
        os.makedirs(d)
        env.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d] + extra,
                  "redis-%d.log" % port)
    wait_until(lambda: redis_ready(p1) and redis_ready(p2), 10, "primary and replica up")
    r2 = Redis(p2)
    wait_until(lambda: "master_link_status:up" in r2("INFO", "replication"), 15, "the replica in sync")
    sentinels = []
    for i in range(3):
        port = free_port()
        conf = os.path.join(env.tmp, "sentinel%d.conf" % i)
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 10000\n"
                    % (port, env.tmp, p1))
        env.spawn(["redis-sentinel", conf], "sentinel%d.log" % i)
        sentinels.append(port)
    wait_until(lambda: all(redis_ready(s) for s in sentinels), 10, "sentinels up")
    s0 = Redis(sentinels[0])
    wait_until(lambda: int(dict(zip(*[iter(s0("SENTINEL", "master", "mymaster"))] * 2)).get("num-other-sentinels", 0)) == 2,
               20, "the sentinels know each other")
    return p1, p2, sentinels


def q(port, *args):
    """One command on a fresh connection (Sentinel kills clients while it reconfigures); None when the
    connection is refused or killed under us, or the node is not serving (LOADING, CLUSTERDOWN)."""
    try:
        r = Redis(port)
        try:
            return r(*args)
        finally:
            r.close()
    except (OSError, ConnectionError, RespError):
        return None


def free_cluster_port():
    """A free port whose cluster bus port (+10000) is free and in range too."""
    while True:
        p = free_port()
        if p + 10000 > 65535:
            continue
        sk = socket.socket()
        try:
            sk.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue
        finally:
            sk.close()


def start_cluster(env, n=3):
    ports = [free_cluster_port() for _ in range(n)]
    for p in ports:
        d = os.path.join(env.tmp, "c%d" % p)
        os.makedirs(d)
        env.spawn(cluster_node_args(env, p), "cluster-%d.log" % p)
    wait_until(lambda: all(redis_ready(p) for p in ports), 10, "cluster nodes up")
    out = subprocess.run(["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % p for p in ports] +
                         ["--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "cluster create: %s %s", out.stdout[-500:], out.stderr[-500:])
    wait_until(lambda: all("cluster_state:ok" in Redis(p)("CLUSTER", "INFO") for p in ports), 20, "cluster ok")
    return ports


def cluster_node_args(env, p):
    d = os.path.join(env.tmp, "c%d" % p)
    return ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
            "--cluster-config-file", os.path.join(d, "nodes.conf"), "--cluster-node-timeout", "2000",
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--dir", d]


def node_of(ports, key):
    slot = Redis(ports[0])("CLUSTER", "KEYSLOT", key)
    for p in ports:
        for lo, hi, *rest in Redis(p)("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                return rest[0][1], slot
    return None, slot


def cluster_get(ports, *args):
    """A command on whichever node serves its key (args[1])."""
    port, _ = node_of(ports, args[1])
    return Redis(port)(*args)


def node_id(port):
    return Redis(port)("CLUSTER", "MYID")
