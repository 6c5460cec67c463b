"""
What a live tail costs: proxy throughput with and without a `wrangler tail` connected, and
whether the tail kept up (events received against requests served).

A function that prints one line per request is loaded with wrk (16 connections, on CPU 0)
while funcplane runs on CPU 1; rounds without and with a tail alternate, --repeat times.
The tail is a minimal WebSocket client in this process (on CPU 0) that counts the events
and reads funcplane's "dropped N events" notices.

    .venv/bin/python bench/tail_cost.py [--seconds 5] [--repeat 3] [--connections 16]
"""

import argparse
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

from common import AUTH, api, funcplane, request
from throughput import LOAD_CPU, SERVER_CPU, ensure_wrk, parse_wrk, wait_for

# throughput put funcplane on the path: the server's frame parser reads its frames here.
from funcplane.admin.websocket import TEXT, FrameParser  # noqa: E402

CODE = 'export default { fetch(r) { console.log("served " + new URL(r.url).pathname); return new Response("ok") } }'
HOST = "tailed.func.local"
SCRIPT = "/client/v4/accounts/bench/workers/scripts/tailed"


class TailClient(threading.Thread):
    """
    Opens a tail and counts what it receives until closed.
    """

    def __init__(self, port):
        super().__init__(daemon=True)
        status, answer, _ = request(port, "POST", SCRIPT + "/tails", "{}", headers=AUTH)
        url = json.loads(answer)["result"]["url"]
        path = "/" + url.split("/", 3)[3]
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: trace-v1\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"the tail did not open: {head!r}")
        self.events = 0
        self.lines = 0
        self.dropped = 0

    def run(self):
        parser = FrameParser(1 << 24)
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for opcode, _, payload in parser.feed(data):
                if opcode != TEXT:
                    continue
                event = json.loads(payload)
                if event["event"].get("type") == "overload":
                    self.dropped += int(re.search(r"dropped (\d+)", event["event"]["message"]).group(1))
                else:
                    self.events += 1
                    self.lines += len(event["logs"])

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.join()
        self.sock.close()


def wrk(port, connections, seconds):
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the load on one, funcplane on the other")
    ensure_wrk()
    os.sched_setaffinity(0, {LOAD_CPU})
    with funcplane(cpu=SERVER_CPU) as port:
        api(port, "POST", "/api/deploy/tailed", {"runtime": "js", "code": CODE, "version": "v1"})
        wait_for(port, HOST)
        rates = {"without": [], "with": []}
        for _ in range(args.repeat):
            _, rate, errors = wrk(port, args.connections, args.seconds)
            rates["without"].append(rate)
            tail = TailClient(port)
            tail.start()
            time.sleep(0.2)
            served, rate, errors = wrk(port, args.connections, args.seconds)
            time.sleep(1)  # the last events wait 100 ms for their lines
            tail.close()
            rates["with"].append(rate)
            print(
                f"  with a tail: {served} requests ({errors} errors), {tail.events} events"
                f" carrying {tail.lines} lines, {tail.dropped} dropped and reported",
                file=sys.stderr,
            )
        without, with_tail = statistics.median(rates["without"]), statistics.median(rates["with"])
        print(
            f"requests/s at {args.connections} connections (median of {args.repeat} x {args.seconds} s):"
            f" without a tail {without:.0f}, with one {with_tail:.0f} ({with_tail / without:.2f})"
        )


if __name__ == "__main__":
    sys.exit(main())
