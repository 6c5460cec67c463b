"""
Tests for L{funcplane.runtime.events} and L{funcplane.runtime.delivery}: the events socket
in a child's config and on disk, and the client that sends a scheduled event over it.
"""

import json
import os
import stat
import tempfile

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from funcplane.model import MODULE, SERVICE_WORKER, Module, VersionSpec
from funcplane.runtime import events
from funcplane.runtime.config import entry_module, service_worker_script
from funcplane.runtime.delivery import EventsClient, NotDelivered
from funcplane.runtime.process import WorkerdLauncher
from tests.fakes import FakeProcessReactor, spec
from tests.runtime.test_assets import spec as assets_spec
from tests.runtime.test_config import builder, one_script


def sockets(version):
    b = builder()
    return {s["name"]: s for s in b.read(b.build(version))["sockets"]}


class ConfigTests(SynchronousTestCase):
    def test_module_entrypoint(self):
        """
        An ES-module version's events socket names the entry module's events entrypoint
        and marks its requests; its public socket is as before (the default export, no
        header rule).
        """
        found = sockets(one_script("export default {fetch(){}}", MODULE))
        self.assertEqual(sorted(found), ["events", "http"])
        self.assertEqual(
            found["events"]["service"], {"name": "main", "entrypoint": "__funcplane_events", "props": {"empty": None}}
        )
        self.assertEqual(
            found["events"]["http"]["injectRequestHeaders"],
            [{"name": "x-funcplane-event", "value": "scheduled"}],
        )
        self.assertEqual(found["http"]["service"]["name"], "main")
        self.assertNotIn("entrypoint", found["http"]["service"])
        self.assertNotIn("injectRequestHeaders", found["http"]["http"])

    def test_entry_module_exports_entrypoint(self):
        """
        The entry module still refuses a main module without a fetch handler first, and
        exports the events entrypoint, a plain object with a fetch method.
        """
        source = entry_module("worker.js")
        self.assertLess(source.index("has no fetch handler"), source.index("export const __funcplane_events = {"))
        self.assertIn("async fetch(request, env, ctx)", source)
        self.assertIn("handler.scheduled(controller, env, context)", source)
        self.assertIn("new handler(context, env)", source)

    def test_service_worker_header(self):
        """
        A service-worker version's events socket goes to the script (it has one
        entrypoint) and marks its requests; the public socket removes that header from
        every client request (a header rule with no value).
        """
        found = sockets(one_script("addEventListener('fetch', e => e.respondWith(new Response('')))", SERVICE_WORKER))
        self.assertEqual(found["events"]["service"], {"name": "main", "props": {"empty": None}})
        self.assertEqual(
            found["events"]["http"]["injectRequestHeaders"],
            [{"name": "x-funcplane-event", "value": "scheduled"}],
        )
        self.assertEqual(found["http"]["http"]["injectRequestHeaders"], [{"name": "x-funcplane-event"}])

    def test_service_worker_prologue_first_line(self):
        """
        The listener that takes events is registered on the script's first line, before
        the script's own listeners and funcplane's fetch check, so no line number moves.
        """
        script = service_worker_script("addEventListener('fetch', f);\n// 2")
        first, _, _ = script.partition("addEventListener('fetch', f);")
        self.assertNotIn("\n", first)
        self.assertTrue(first.startswith(events.WORKER_PROLOGUE))
        self.assertLess(first.index("add.call(globalThis, 'fetch'"), first.index("let __funcplane_fetches"))

    def test_commonjs_main_has_none(self):
        """
        A version whose main module is CommonJS (no entry module carries an entrypoint)
        has no events socket.
        """
        version = VersionSpec("id", "f", "v", MODULE, (Module("w.cjs", "commonJsModule", b"module.exports = {}"),), ())
        self.assertFalse(events.takes_events(version))
        self.assertEqual(sorted(sockets(version)), ["http"])

    def test_assets_router_bypassed(self):
        """
        With static assets the public socket goes to the asset router, but events go to
        the user's worker directly.
        """
        found = sockets(assets_spec())
        self.assertEqual(found["http"]["service"]["name"], "assets")
        self.assertEqual(found["events"]["service"], {"name": "main", "entrypoint": "__funcplane_events", "props": {"empty": None}})

    def test_socket_path(self):
        """
        The events socket sits beside the HTTP socket, named after it.
        """
        self.assertEqual(events.events_socket_path("/run/abc.sock"), "/run/abc.events.sock")


class LauncherTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(self.run_dir, f)) for f in os.listdir(self.run_dir)] and None)
        self.launcher = WorkerdLauncher(self.reactor, "/opt/workerd", self.run_dir, builder(), startup_timeout=5)

    def test_events_socket(self):
        """
        The child gets a private (0600) events socket beside its HTTP socket as fd 6, by
        name on workerd's command line; both are removed when it exits.
        """
        child = self.launcher.launch(spec())
        spawned = self.reactor.spawned[-1]
        path = events.events_socket_path(child.socket_path)
        mode = os.stat(path).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertIn("events=6", spawned["args"])
        self.assertIsInstance(spawned["childFDs"][events.EVENTS_FD], int)
        spawned["transport"].exit(Exception("gone"))
        self.assertEqual(os.listdir(self.run_dir), [])

    def test_no_events_socket(self):
        """
        A version that takes no events gets no events socket and no such descriptor.
        """
        version = VersionSpec("id", "f", "v", MODULE, (Module("w.cjs", "commonJsModule", b"module.exports = {}"),), ())
        child = self.launcher.launch(version)
        spawned = self.reactor.spawned[-1]
        self.assertNotIn("events=6", spawned["args"])
        self.assertNotIn(events.EVENTS_FD, spawned["childFDs"])
        self.assertEqual(os.listdir(self.run_dir), [os.path.basename(child.socket_path)])


class DeliveryTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.client = EventsClient(self.reactor, timeout=30)

    def send(self):
        d = Deferred.fromCoroutine(self.client.scheduled("/run/abc.sock", "*/5 * * * *", 1800000000.25))
        [(path, factory, _, _)] = self.reactor.unixClients
        self.assertEqual(path, "/run/abc.events.sock")
        return d, factory

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_request_and_answer(self):
        """
        The event is a JSON POST on the events socket, the time in milliseconds; the
        child's JSON answer is the result.
        """
        d, factory = self.send()
        protocol, transport = self.connect(factory)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"POST /scheduled HTTP/1.1\r\n"), head)
        self.assertIn(b"Content-Type: application/json", head)
        self.assertEqual(json.loads(body), {"cron": "*/5 * * * *", "scheduledTime": 1800000000250})
        answer = b'{"outcome":"ok"}'
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        self.assertEqual(self.successResultOf(d), {"outcome": "ok"})

    def test_not_funcplanes_answer(self):
        """
        An answer that is not funcplane's (an error page, no outcome) is not delivered.
        """
        d, factory = self.send()
        protocol, _ = self.connect(factory)
        protocol.dataReceived(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno")
        failure = self.failureResultOf(d, NotDelivered)
        self.assertIn("status 500 and no outcome", str(failure.value))

    def test_timeout(self):
        """
        No answer within the timeout is not delivered, and says how long it waited.
        """
        d, factory = self.send()
        self.connect(factory)
        self.reactor.advance(30)
        failure = self.failureResultOf(d, NotDelivered)
        self.assertIn("did not finish within 30 seconds", str(failure.value))

    def test_refused(self):
        """
        A socket nobody listens on is not delivered; when it does not even exist, the
        version takes no events, and the message says so.
        """
        d, factory = self.send()
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        failure = self.failureResultOf(d, NotDelivered)
        self.assertIn("the version has no events socket: only ES-module and service-worker", str(failure.value))
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "abc.events.sock")
        open(path, "w").close()
        self.addCleanup(os.unlink, path)
        d = Deferred.fromCoroutine(self.client.scheduled(os.path.join(directory, "abc.sock"), "* * * * *", 0))
        self.reactor.unixClients[-1][1].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        failure = self.failureResultOf(d, NotDelivered)
        self.assertIn("could not reach the version's events socket", str(failure.value))

    def test_cancelled(self):
        """
        A delivery cancelled by its caller fails as cancelled (funcplane stops), not as
        not delivered.
        """
        d, factory = self.send()
        self.connect(factory)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connection_lost(self):
        """
        A child that dies before it answers (the connection closes) is not delivered.
        """
        d, factory = self.send()
        protocol, _ = self.connect(factory)
        protocol.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(d, NotDelivered)
        self.assertIn("closed the connection before it answered", str(failure.value))
