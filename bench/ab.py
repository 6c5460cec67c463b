"""
A/B of the proxy: funcplane at another commit (A) and this checkout (B), side by side in one
run, on the same trivial function, so a change to the hot path is judged against the code
before it under the same conditions.

Both funcplanes and their children run on CPU 1; wrk runs alone on CPU 0 and loads A and B
in turn (the order alternating each round), --repeat rounds of --seconds each per
connection count; the table shows medians and B/A.  Throughput on a shared virtual machine
moves with its neighbours, so the table also gives what each request cost funcplane's own
process in CPU time (from /proc/PID/stat, over the same runs): the steadier measure.  A's code is `git archive`d into a
temporary directory and run from this checkout's virtualenv with PYTHONPATH pointing there.

    .venv/bin/python bench/ab.py [BASE=HEAD~1] [--seconds 4] [--repeat 4] [--requests 5000] [--connections 1,16,64]
"""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import ROOT, Server, api, free_port
from throughput import CODE, HOST, LOAD_CPU, SERVER_CPU, RawClient, ensure_wrk, parse_wrk, wait_for

sys.path.insert(0, ROOT)

from funcplane.runtime.locate import find_workerd  # noqa: E402

CONNECTIONS = [1, 16, 64]


def export(revision, directory):
    """
    The tree of C{revision} in C{directory}; its commit id.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", directory], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {revision} failed")
    return commit


def cpu_seconds(pid):
    """
    The CPU time (user and system) process C{pid} has used.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server, connections, seconds):
    """
    wrk against C{server}: C{(requests a second, errors, funcplane CPU microseconds a
    request)}.
    """
    before = cpu_seconds(server.pid)
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "-H", f"Host: {HOST}", f"http://127.0.0.1:{server.port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    used = cpu_seconds(server.pid) - before
    requests, rate, errors = parse_wrk(out)
    return rate, errors, used / max(requests, 1) * 1e6


@contextlib.contextmanager
def running(tree, workerd):
    """
    A funcplane running the code in C{tree}, on CPU 1; yields its L{Server}.
    """
    data = tempfile.mkdtemp(prefix="fpab")
    server = Server(free_port(), os.path.join(data, "d"), ("--workerd", workerd), SERVER_CPU,
                    {"PYTHONPATH": tree})
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("base", nargs="?", default="HEAD~1")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5000, help="raw-latency requests per target and round")
    parser.add_argument("--connections", default="1,16,64", help="connection counts, comma-separated")
    args = parser.parse_args()
    global CONNECTIONS
    CONNECTIONS = [int(c) for c in args.connections.split(",")]
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the load on one, the servers on the other")
    ensure_wrk()
    os.sched_setaffinity(0, {LOAD_CPU})
    workerd = find_workerd(start=ROOT)
    tree = tempfile.mkdtemp(prefix="fpab")
    try:
        base = export(args.base, tree)
        with running(tree, workerd) as a, running(ROOT, workerd) as b:
            targets = {f"A {base}": a, "B checkout": b}
            for server in targets.values():
                api(server.port, "POST", "/api/deploy/hello", {"runtime": "js", "code": CODE, "version": "v1"})
                wait_for(server.port)
            rates = {(t, c): [] for t in targets for c in CONNECTIONS}
            costs = {(t, c): [] for t in targets for c in CONNECTIONS}
            latency = {t: [] for t in targets}
            errors = {t: 0 for t in targets}
            for round_ in range(args.repeat):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    with RawClient(targets[name].port, HOST) as client:
                        client.times(500)
                        latency[name].append(statistics.median(client.times(args.requests)))
                for connections in CONNECTIONS:
                    for name in order:
                        rate, failed, cost = load(targets[name], connections, args.seconds)
                        rates[name, connections].append(rate)
                        costs[name, connections].append(cost)
                        errors[name] += failed
                print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    a_name, b_name = targets
    print(f"A/B (median of {args.repeat} x {args.seconds} s, wrk -t1 on CPU {LOAD_CPU}; both funcplanes on CPU {SERVER_CPU})")
    print(f"| connections | {a_name} req/s | {b_name} req/s | B/A | A CPU us/req | B CPU us/req | B/A |")
    print("|---|---|---|---|---|---|---|")
    for connections in CONNECTIONS:
        ma, mb = (statistics.median(rates[n, connections]) for n in (a_name, b_name))
        ca, cb = (statistics.median(costs[n, connections]) for n in (a_name, b_name))
        print(f"| {connections} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.3f} | {ca:.1f} | {cb:.1f} | {cb / ca:.3f} |")
    for name in targets:
        print(f"rounds {name}: " + "; ".join(
            f"c={c} " + " ".join(f"{r:.0f}" for r in rates[name, c]) for c in CONNECTIONS))
    la, lb = statistics.median(latency[a_name]), statistics.median(latency[b_name])
    print(f"p50 at 1 connection: A {la:.0f} us, B {lb:.0f} us ({(lb - la):+.0f} us)")
    print(f"errors: A {errors[a_name]}, B {errors[b_name]}")


if __name__ == "__main__":
    main()
