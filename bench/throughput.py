"""
Proxy throughput and latency: the same trivial function served directly by workerd and
through funcplane, side by side in one run.

The load generator (wrk, and a raw-latency client) runs alone on CPU 0; funcplane with its
children, and the direct workerd, run on CPU 1 (taskset), so proxy and runtime share one
core's budget.  For 1, 16 and 64 connections, each target is loaded for --seconds, the two
alternating, --repeat times; the table shows medians.  Latency percentiles at one connection
come from a client that records every request's own time (wrk's percentiles are not used).

    .venv/bin/python bench/throughput.py [--seconds 5] [--repeat 3] [--requests 5000]

wrk comes from Debian's package; the script installs it (apt-get) when it is missing.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, api, free_port, funcplane

sys.path.insert(0, ROOT)

from funcplane.model import MODULE, VersionSpec, script_modules  # noqa: E402
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings  # noqa: E402
from funcplane.runtime.egress import EgressPolicy  # noqa: E402
from funcplane.runtime.locate import find_workerd  # noqa: E402

CODE = 'export default { fetch() { return new Response("ok") } }'
HOST = "hello.func.local"
LOAD_CPU, SERVER_CPU = 0, 1
CONNECTIONS = [1, 16, 64]


def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("installing wrk (apt-get install wrk)", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


class DirectWorkerd:
    """
    workerd serving CODE on a TCP port, with the config funcplane would give it.
    """

    def __init__(self, cpu):
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="fpdirect")
        config = os.path.join(self._dir, "config.bin")
        builder = ConfigBuilder(RuntimeSettings(egress=EgressPolicy.for_host()))
        with open(config, "wb") as f:
            f.write(builder.build(VersionSpec("direct", "hello", "v1", MODULE, script_modules(CODE, MODULE))))
        self._process = subprocess.Popen(
            ["taskset", "-c", str(cpu), find_workerd(), "serve", "--binary", config,
             "--socket-addr", f"http=127.0.0.1:{self.port}",
             "--socket-addr", "events=unix:" + os.path.join(self._dir, "events.sock")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.port)

    def close(self):
        self._process.terminate()
        self._process.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)


def wait_for(port, host=HOST):
    deadline = time.monotonic() + 20
    while True:
        try:
            with RawClient(port, host) as client:
                if client.get() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing answers on port {port}")
        time.sleep(0.05)


class RawClient:
    """
    One kept-alive connection; GET / and read the response, timing each.
    """

    def __init__(self, port, host):
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self._buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()

    def get(self):
        self._sock.sendall(self._request)
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            self._buffer = head + b"\r\n\r\n" + rest
            self._read()
            head, _, rest = self._buffer.partition(b"\r\n\r\n")
        body, self._buffer = rest[:length], rest[length:]
        return body

    def _read(self):
        data = self._sock.recv(65536)
        if not data:
            raise OSError("connection closed")
        self._buffer += data

    def times(self, count):
        """
        Microseconds each of C{count} requests took, from sending to the whole response.
        """
        found = []
        for _ in range(count):
            started = time.perf_counter_ns()
            self.get()
            found.append((time.perf_counter_ns() - started) / 1000)
        return found


def percentile(values, p):
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[p - 1]


def wrk(port, connections, seconds, host=HOST):
    """
    Requests a second and errors, from wrk on the load CPU.
    """
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    _, rate, errors = parse_wrk(out)
    return rate, errors


def parse_wrk(out):
    """
    C{(requests, requests a second, errors)} from wrk's report; errors are non-2xx/3xx
    answers plus socket errors (connect, read, write, timeout).
    """
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return requests, rate, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000, help="raw-latency requests per target and round")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the load on one, the servers on the other")
    ensure_wrk()
    os.sched_setaffinity(0, {LOAD_CPU})
    direct = DirectWorkerd(SERVER_CPU)
    try:
        with funcplane(cpu=SERVER_CPU) as port:
            api(port, "POST", "/api/deploy/hello", {"runtime": "js", "code": CODE, "version": "v1"})
            wait_for(port)
            targets = {"direct": direct.port, "funcplane": port}
            rates = {(t, c): [] for t in targets for c in CONNECTIONS}
            errors = {t: 0 for t in targets}
            latency = {t: [] for t in targets}
            for round_ in range(args.repeat):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    with RawClient(targets[name], HOST) as client:
                        client.times(500)
                        latency[name].append(client.times(args.requests))
                for connections in CONNECTIONS:
                    for name in order:
                        rate, failed = wrk(targets[name], connections, args.seconds)
                        rates[name, connections].append(rate)
                        errors[name] += failed
                print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        direct.close()
    print(f"throughput (median of {args.repeat} x {args.seconds} s, wrk -t1 on CPU {LOAD_CPU}; servers on CPU {SERVER_CPU})")
    print("| connections | direct req/s | funcplane req/s | ratio |")
    print("|---|---|---|---|")
    for connections in CONNECTIONS:
        d = statistics.median(rates["direct", connections])
        f = statistics.median(rates["funcplane", connections])
        print(f"| {connections} | {d:,.0f} | {f:,.0f} | {f / d:.2f} |")
    print(f"errors: direct {errors['direct']}, funcplane {errors['funcplane']}")
    print(f"latency at 1 connection, raw per-request times ({args.requests} requests x {args.repeat}), microseconds")
    print("| | p50 | p99 |")
    print("|---|---|---|")
    p50 = {}
    for name in targets:
        p50[name] = statistics.median(statistics.median(run) for run in latency[name])
        p99 = statistics.median(percentile(run, 99) for run in latency[name])
        print(f"| {name} | {p50[name]:.0f} | {p99:.0f} |")
    print(f"added p50: {(p50['funcplane'] - p50['direct']) / 1000:.3f} ms")


if __name__ == "__main__":
    main()
