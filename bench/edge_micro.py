"""
What the edge's own code costs per request, without sockets: a kept-alive GET through the
real listener, exchange, upstream pool and a real Supervisor, over in-memory transports
whose far ends answer at once.

No kernel, no reactor, no workerd: only funcplane's Python and the parsers it calls. That
makes it the steady figure for an A/B of a change to the hot path, where the network bench
(bench/ab.py) spreads by tens of percent on a shared machine. Run it under callgrind for a
count that does not move at all:

    .venv/bin/python bench/edge_micro.py --callgrind [--base COMMIT]

or, for a quick look, its own timing:

    .venv/bin/python bench/edge_micro.py --requests 50000 [--repeat 5] [--base COMMIT]

With --base, the same run is made on COMMIT's code (git archive into a temporary
directory) in a child interpreter, alternating, and both are printed side by side.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

REQUEST = b"GET /path?q=1 HTTP/1.1\r\nHost: hello.func.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


def run(requests):
    """
    Serve C{requests} GETs on one client connection; return the seconds they took.
    """
    from twisted.internet.address import IPv4Address
    from twisted.internet.defer import succeed
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet import reactor
    from twisted.internet.testing import StringTransport
    from zope.interface import implementer

    from funcplane.edge.listener import ProxyFactory
    from funcplane.edge.upstream import UpstreamPool
    from funcplane.interfaces import IChild
    from funcplane.model import FunctionRoutes, VersionSpec, script_modules, text_bindings
    from funcplane.routing import RouteTable
    from funcplane.runtime.supervisor import Supervisor

    @implementer(IChild)
    class Child:
        pid = 4242
        socket_path = "/run/bench.sock"

        def __init__(self, spec):
            self.spec = spec

        def when_ready(self):
            return succeed(self)

        def when_ended(self):
            from twisted.internet.defer import Deferred

            return Deferred()

        def stderr_tail(self):
            return []

        def stop(self, grace):
            return self.when_ended()

        def signal(self, signum):
            pass

    class Launcher:
        def launch(self, spec):
            return Child(spec)

    asked = []

    class Answering(StringTransport):
        """
        The child's end: every request written to it is answered, once the edge is done
        with the bytes that carried it (as a real child's answer arrives later).
        """

        def write(self, data):
            if data.endswith(b"\r\n\r\n"):
                asked.append(self.protocol)

    class Client(StringTransport):
        """
        The client's end: each complete response is counted and dropped.
        """

        answered = 0

        def write(self, data):
            if data.endswith(b"hello"):
                self.answered += 1

    def connect(socket_path, protocol):
        transport = Answering()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return succeed(protocol)

    # The real reactor's clock (its timers are set and moved, never run), as the
    # listener's deadlines read it in service.
    clock = reactor
    spec = VersionSpec(
        id="id1", function="hello", version="v1", format="module",
        modules=script_modules("c", "module"), bindings=text_bindings(()),
    )
    supervisor = Supervisor(clock, Launcher(), lambda version_id: succeed(spec), jitter=lambda: 1.0)
    supervisor.start(spec)
    routes = RouteTable("func.local")
    routes.replace(FunctionRoutes("hello", "id1", {"v1": "id1"}, {}))
    pool = UpstreamPool(clock, connect=connect)
    factory = ProxyFactory(routes, supervisor, pool, Factory.forProtocol(Protocol), clock)
    peer = IPv4Address("TCP", "127.0.0.1", 50000)
    channel = factory.buildProtocol(peer)
    client = Client(peerAddress=peer)
    channel.makeConnection(client)
    begin = time.perf_counter()
    for _ in range(requests):
        channel.dataReceived(REQUEST)
        while asked:
            asked.pop().dataReceived(RESPONSE)
    took = time.perf_counter() - begin
    if client.answered != requests:
        raise SystemExit(f"{client.answered} of {requests} requests were answered")
    return took


def base_tree(commit):
    """
    C{commit}'s code in a temporary directory, for a side-by-side run.
    """
    where = tempfile.mkdtemp(prefix="edge-micro-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "funcplane"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
    return where


def child_run(tree, requests):
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--requests", str(requests), "--seconds-only"],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    ).stdout
    return float(out)


def instructions(tree, requests):
    """
    Instructions callgrind counts for a run of C{requests} in C{tree}'s code.
    """
    env = dict(os.environ, PYTHONPATH=tree, PYTHONHASHSEED="0")
    err = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--requests", str(requests), "--quiet"],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    ).stderr
    return int(re.search(r"Collected : (\d+)", err).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", help="a commit to run side by side with this checkout")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions per request under valgrind instead of timing")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for callgrind)")
    parser.add_argument("--seconds-only", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.quiet or options.seconds_only:
        took = run(options.requests)
        if options.seconds_only:
            print(took)
        return
    trees = {"this checkout": ROOT}
    if options.base:
        trees = {options.base: base_tree(options.base), "this checkout": ROOT}
    if options.callgrind:
        for name, tree in trees.items():
            per = (instructions(tree, 6000) - instructions(tree, 1000)) / 5000
            print(f"{name}: {per:,.0f} instructions/request (callgrind, 6,000 minus 1,000 requests)")
        return
    results = {name: [] for name in trees}
    for _ in range(options.repeat):
        for name, tree in trees.items():
            results[name].append(child_run(tree, options.requests))
    for name, runs in results.items():
        per = sorted(1e6 * took / options.requests for took in runs)
        print(f"{name}: {per[len(per) // 2]:.2f} µs/request median of {len(per)}"
              f" (min {per[0]:.2f}, max {per[-1]:.2f})")


if __name__ == "__main__":
    main()
