"""
Starting and stopping a real funcplane for integration tests, and talking to it.
"""

import json
import os
import shutil
import socket
import tempfile

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool

from funcplane.datadir import RUN_DIR
from funcplane.runtime.locate import find_workerd
from funcplane.service import FuncplaneService, Settings

TOKEN = "integration-token-0123456789abcdef01234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port():
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_in(directory):
    """
    The pids of processes whose working directory is C{directory} or under it: funcplane
    starts every child there, so this finds them all, even ones funcplane lost track of.
    """
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd == directory or cwd.startswith(directory + os.sep):
                found.append(int(pid))
    return found


class Funcplane:
    """
    One funcplane service under test, on 127.0.0.1 and a free port.
    """

    def __init__(self, test_case, data_dir=None, **settings):
        self.test_case = test_case
        self.data_dir = data_dir or os.path.join(tempfile.mkdtemp(prefix="fp"), "d")
        self.settings = Settings(
            listen="tcp:0:interface=127.0.0.1",
            data_dir=self.data_dir,
            workerd=find_workerd(),
            startup_timeout=settings.pop("startup_timeout", 3.0),
            stop_grace=2.0,
            **settings,
        )
        self.service = None
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = treq.client.HTTPClient(Agent(reactor, pool=self.pool))

    @property
    def run_dir(self):
        return os.path.join(self.data_dir, RUN_DIR)

    async def start(self):
        self.service = FuncplaneService(reactor, self.settings, environ={"FUNCPLANE_ADMIN_TOKEN": TOKEN})
        self.service.startService()
        await self.service.ready
        self.port = self.service.port.getHost().port
        self.test_case.addCleanup(self.stop)
        return self

    async def stop(self):
        if self.service is not None and self.service.running:
            await self.service.stopService()

    def remove(self):
        shutil.rmtree(os.path.dirname(self.data_dir), ignore_errors=True)

    async def request(self, method, path, body=None, host=None, headers=None):
        """
        Send a request; return C{(status, body bytes)}.
        """
        all_headers = dict(headers or {})
        if host is not None:
            all_headers["Host"] = host
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        response = await self.client.request(
            method, f"http://127.0.0.1:{self.port}{path}", data=data, headers=all_headers
        )
        return response.code, await response.content()

    async def api(self, method, path, body=None, headers=AUTH):
        """
        Call the admin API; return C{(status, parsed JSON)}.
        """
        code, content = await self.request(method, path, body, headers=headers)
        return code, json.loads(content)

    async def deploy(self, name, code, **fields):
        return await self.api("POST", f"/api/deploy/{name}", dict({"runtime": "js", "code": code}, **fields))

    async def get(self, host, path="/"):
        """
        GET C{path} on a function host; return C{(status, text)}.
        """
        code, content = await self.request("GET", path, host=host)
        return code, content.decode("utf-8")


class RawClient(Protocol):
    """
    A client that writes bytes as the test says and lets it wait for what comes back.
    """

    def __init__(self):
        self.received = b""
        self._waiting = []
        self.lost = Deferred()

    def dataReceived(self, data):
        self.received += data
        for marker, d in list(self._waiting):
            if marker in self.received:
                self._waiting.remove((marker, d))
                d.callback(self.received)

    def connectionLost(self, reason):
        self.lost.callback(self.received)

    def wait_for(self, marker):
        """
        A Deferred that fires with everything received once C{marker} has been.
        """
        d = Deferred()
        if marker in self.received:
            d.callback(self.received)
        else:
            self._waiting.append((marker, d))
        return d.addTimeout(10, reactor)


async def raw_connection(test_case, port):
    """
    A L{RawClient} connected to 127.0.0.1:C{port}, closed when the test ends.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    client = await connectProtocol(endpoint, RawClient())
    test_case.addCleanup(client.transport.loseConnection)
    return client


async def sleep(seconds):
    """
    Wait C{seconds} on the real reactor.
    """
    await deferLater(reactor, seconds, lambda: None)


async def eventually(check, seconds=10.0):
    """
    Wait until C{check()} is true, polling; fail after C{seconds}.  Returns C{True}, so it
    reads in an assertion too.
    """
    waited = 0.0
    while not check():
        if waited >= seconds:
            raise AssertionError(f"not true after {seconds} s")
        await sleep(0.05)
        waited += 0.05
    return True
