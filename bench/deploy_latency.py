"""
Deploy latency: from the deploy request to the new version's first served response.

Starts funcplane (twistd, in a temporary data directory), deploys N new versions of one
function one after another, and for each measures the time from sending the deploy request
to receiving the new version's answer at its own host.  Prints the median and spread.

    .venv/bin/python bench/deploy_latency.py [--runs 20]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOKEN = "bench-token"
CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, host=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    all_headers = dict(headers or {})
    if host:
        all_headers["Host"] = host
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def wait_until_up(port, deadline):
    while time.monotonic() < deadline:
        try:
            request(port, "GET", "/api/functions", headers={"Authorization": f"Bearer {TOKEN}"})
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("funcplane did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = tempfile.mkdtemp(prefix="fpbench")
    port = free_port()
    twistd = os.path.join(root, ".venv", "bin", "twistd")
    server = subprocess.Popen(
        [twistd, "-n", "--pidfile=", "funcplane", "--port", f"tcp:{port}:interface=127.0.0.1",
         "--data-dir", os.path.join(data, "d")],
        env=dict(os.environ, FUNCPLANE_ADMIN_TOKEN=TOKEN), cwd=root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, time.monotonic() + 20)
        times = []
        for i in range(args.runs + 1):
            marker = f"bench-{i}"
            body = json.dumps({"runtime": "js", "code": CODE.format(marker=marker), "version": f"b{i}"})
            started = time.perf_counter()
            status, answer = request(port, "POST", "/api/deploy/bench", body,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
            if status != 200:
                raise SystemExit(f"deploy failed: {status} {answer!r}")
            status, answer = request(port, "GET", "/", host=f"b{i}.bench.func.local")
            elapsed = time.perf_counter() - started
            if answer.decode() != marker:
                raise SystemExit(f"version b{i} answered {answer!r}")
            if i:  # the first deploy also creates the function: leave it out
                times.append(elapsed * 1000)
        times.sort()
        print(f"deploy -> first response, {len(times)} deploys (ms): "
              f"median {statistics.median(times):.1f}, p90 {times[int(len(times) * 0.9) - 1]:.1f}, "
              f"min {times[0]:.1f}, max {times[-1]:.1f}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
