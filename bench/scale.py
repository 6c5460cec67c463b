"""
Scale: with 1, 100 and 1,000 functions deployed (at most --max-running 8 alive, the rest
suspended), the throughput of one hot function through funcplane, funcplane's own memory,
and the time from restarting funcplane to the hot function answering again.

The load runs on CPU 0 and funcplane with its children on CPU 1, as in throughput.py.

    .venv/bin/python bench/scale.py [--counts 1,100,1000] [--seconds 5] [--repeat 3]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from common import api, free_port, request, Server
from throughput import LOAD_CPU, SERVER_CPU, ensure_wrk, wrk

CODE = 'export default {{ fetch() {{ return new Response("{marker}") }} }}'
OPTIONS = ["--max-running", "8"]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def hot_answers(port):
    try:
        status, body, _ = request(port, "GET", "/", host="hot.func.local")
    except OSError:
        return False
    return (status, body) == (200, b"hot")


def measure(count, seconds, repeat):
    data = tempfile.mkdtemp(prefix="fpscale")
    data_dir = os.path.join(data, "d")
    port = free_port()
    server = Server(port, data_dir, OPTIONS, SERVER_CPU)
    try:
        started = time.monotonic()
        for i in range(count - 1):
            api(port, "POST", f"/api/deploy/f{i}", {"runtime": "js", "code": CODE.format(marker=f"f{i}"), "version": "v1"})
        api(port, "POST", "/api/deploy/hot", {"runtime": "js", "code": CODE.format(marker="hot"), "version": "v1"})
        deploying = time.monotonic() - started
        rates = [wrk_rate(port, seconds) for _ in range(repeat)]
        rss = rss_mb(server.pid)
        server.stop()
        started = time.monotonic()
        server = Server(port, data_dir, OPTIONS, SERVER_CPU)
        while not hot_answers(port):
            time.sleep(0.01)
        restart = time.monotonic() - started
        return statistics.median(rates), rss, restart, deploying
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def wrk_rate(port, seconds):
    rate, errors = wrk(port, 16, seconds, host="hot.func.local")
    if errors:
        raise SystemExit(f"{errors} errors under load")
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--counts", default="1,100,1000")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ensure_wrk()
    os.sched_setaffinity(0, {LOAD_CPU})
    rows = []
    for count in map(int, args.counts.split(",")):
        rows.append((count, *measure(count, args.seconds, args.repeat)))
        print(f"{count} functions done", file=sys.stderr)
    base = rows[0][1]
    print(f"one hot function among N (--max-running 8), wrk -c16 median of {args.repeat} x {args.seconds} s")
    print("| functions | hot req/s | vs first | funcplane RSS | restart to hot answer | deploying all |")
    print("|---|---|---|---|---|---|")
    for count, rate, rss, restart, deploying in rows:
        print(f"| {count:,} | {rate:,.0f} | {rate / base:.2f} | {rss:.0f} MB | {restart * 1000:.0f} ms | {deploying:.1f} s |")


if __name__ == "__main__":
    main()
