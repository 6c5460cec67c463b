"""
What the benchmarks share: starting funcplane (twistd, in a temporary data directory) and
talking to it with the standard library's HTTP client, timed on this side.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

TOKEN = "bench-token-0123456789abcdef0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, host=None, headers=None):
    """
    One request on a new connection; C{(status, body, seconds to the response head)}.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    all_headers = dict(headers or {})
    if host:
        all_headers["Host"] = host
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    head = time.perf_counter() - started
    data = response.read()
    connection.close()
    return response.status, data, head


def api(port, method, path, body=None):
    status, data, _ = request(port, method, path, json.dumps(body) if body is not None else None, headers=AUTH)
    if status != 200:
        raise SystemExit(f"{method} {path} failed: {status} {data!r}")
    return json.loads(data)


class Server:
    """
    One twistd funcplane on C{port} with its data in C{data_dir}; C{pid} is twistd's.
    """

    def __init__(self, port, data_dir, options=(), cpu=None, env=None):
        pin = [] if cpu is None else ["taskset", "-c", str(cpu)]
        self.port = port
        self.process = subprocess.Popen(
            [*pin, os.path.join(ROOT, ".venv", "bin", "twistd"), "-n", "--pidfile=", "funcplane",
             "--port", f"tcp:{port}:interface=127.0.0.1", "--data-dir", data_dir, *options],
            env=dict(os.environ, FUNCPLANE_ADMIN_TOKEN=TOKEN, **(env or {})), cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                request(port, "GET", "/api/functions", headers=AUTH)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit("funcplane did not start")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


@contextlib.contextmanager
def funcplane(*options, cpu=None, env=None):
    """
    A funcplane on a free port of 127.0.0.1, stopped (SIGTERM) at the end; yields the port.

    @param cpu: the CPU funcplane and its children run on (C{taskset}), or L{None}.
    @param env: more environment for twistd (C{PYTHONPATH}, to run another checkout's code).
    """
    data = tempfile.mkdtemp(prefix="fpbench")
    server = Server(free_port(), os.path.join(data, "d"), options, cpu, env)
    try:
        yield server.port
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def summary(milliseconds):
    """
    p50, p99, min and max of a list of times in milliseconds, as text.
    """
    ordered = sorted(milliseconds)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98]
    return (f"p50 {statistics.median(ordered):.1f}  p99 {p99:.1f}  "
            f"min {ordered[0]:.1f}  max {ordered[-1]:.1f}  (n={len(ordered)})")
