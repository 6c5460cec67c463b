"""
Tests for L{funcplane.runtime.storage}: a version's KV bindings in its config, and the
storage socket its child gets from the launcher for as long as it lives.
"""

import ipaddress
import os
import stat
import tempfile

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import StartFailed
from funcplane.model import KV_NAMESPACE, Binding
from funcplane.runtime import storage
from funcplane.runtime.config import ConfigBuilder, RuntimeSettings
from funcplane.runtime.egress import EgressPolicy
from funcplane.runtime.process import WorkerdLauncher, children_directory, clean_run_dir, make_children_directory
from tests.fakes import FakeProcessReactor, spec
from tests.runtime.test_config import HOSTILE, SCHEMA

NS1 = "1" * 32
NS2 = "2" * 32


def bound(*pairs):
    """
    A spec binding C{(name, namespace id)} pairs beside a text binding.
    """
    plain = spec(env=[("GREETING", "hi")])
    kv = tuple(Binding(name, KV_NAMESPACE, namespace) for name, namespace in pairs)
    return attrs.evolve(plain, bindings=plain.bindings + kv)


def builder():
    return ConfigBuilder(RuntimeSettings(egress=EgressPolicy(denied_hosts=(ipaddress.ip_network("127.0.0.1/32"),))), SCHEMA)


class StorageConfigTests(SynchronousTestCase):
    def config(self, version_spec, child_id="c0ffee"):
        b = builder()
        return b.read(b.build(version_spec, child_id))

    def test_external_services(self):
        """
        Each namespace bound is one external service on the child's storage socket that
        adds the namespace's id as C{X-FP-Namespace}; two bindings of one namespace share
        its service; the bindings name the services.
        """
        config = self.config(bound(("A", NS2), ("B", NS1), ("C", NS2)))
        services = {s["name"]: s for s in config["services"]}
        expected = {
            "kv-0": NS1,
            "kv-1": NS2,
        }
        for name, namespace in expected.items():
            self.assertEqual(
                services[name]["external"],
                {
                    "address": "unix:/proc/self/cwd/c0ffee.storage.sock",
                    "http": {
                        "style": "host",
                        "injectRequestHeaders": [{"name": "X-FP-Namespace", "value": namespace}],
                    },
                },
            )
        bindings = {b["name"]: b for b in services["main"]["worker"]["bindings"]}
        self.assertEqual(
            [bindings[n]["kvNamespace"]["name"] for n in "ABC"], ["kv-1", "kv-0", "kv-1"]
        )
        self.assertEqual(bindings["GREETING"]["text"], "hi")

    def test_no_user_string_in_structure(self):
        """
        Hostile binding names and a hostile child id never reach a service name or an
        address: the names are funcplane's (numbers), the address is the child id's
        socket, and the binding names come back as given.
        """
        names = [f"{value}{i}" for i, value in enumerate(HOSTILE)]
        config = self.config(bound(*((name, NS1) for name in names)))
        kv_services = [s for s in config["services"] if "external" in s]
        self.assertEqual(
            [(s["name"], s["external"]["address"]) for s in kv_services],
            [("kv-0", "unix:/proc/self/cwd/c0ffee.storage.sock")],
        )
        found = [b for b in config["services"][0]["worker"]["bindings"] if "kvNamespace" in b]
        self.assertEqual(sorted(b["name"] for b in found), sorted(names))
        self.assertEqual({b["kvNamespace"]["name"] for b in found}, {"kv-0"})

    def test_needs_child_id(self):
        """
        A version that binds storage cannot be built without its child's id; one that does
        not is built as before, with no external service.
        """
        self.assertRaises(ValueError, builder().build, bound(("A", NS1)))
        config = builder().read(builder().build(spec()))
        self.assertEqual([s["name"] for s in config["services"]], ["main", "internet"])


@attrs.define
class FakePort:
    closing: Deferred = attrs.field(factory=Deferred)
    stopped: int = 0

    def stopListening(self):
        self.stopped += 1
        return self.closing


class FakeChannel:
    def __init__(self):
        self.calls = []
        self.ports = []

    def listen(self, directory, child_id, version_spec, owner=None):
        self.calls.append((directory, child_id, version_spec, owner))
        self.ports.append(FakePort())
        return self.ports[-1]


class LauncherChannelTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.run_dir = tempfile.mkdtemp()
        make_children_directory(self.run_dir)
        self.channel = FakeChannel()
        self.launcher = WorkerdLauncher(
            self.reactor, "/opt/workerd", self.run_dir, builder(), 5.0, user=(65534, 65534), storage=self.channel
        )

    def test_socket_for_the_child(self):
        """
        A child whose version binds a namespace gets a storage socket in the children's
        directory, for its own id and owned by the child's user, named by its config; it
        has ended only once that socket is closed.
        """
        version_spec = bound(("A", NS1))
        child = self.launcher.launch(version_spec)
        [(directory, child_id, given, owner)] = self.channel.calls
        self.assertEqual((directory, given, owner), (children_directory(self.run_dir), version_spec, (65534, 65534)))
        self.assertTrue(os.path.basename(child.socket_path).startswith(child_id))
        ended = child.when_ended()
        self.reactor.spawned[-1]["transport"].exit(ProcessDone(0))
        self.assertEqual(self.channel.ports[0].stopped, 1)
        self.assertNoResult(ended)
        self.channel.ports[0].closing.callback(None)
        self.successResultOf(ended)

    def test_no_storage_no_socket(self):
        """
        A version without KV bindings gets no storage socket.
        """
        self.launcher.launch(spec())
        self.assertEqual(self.channel.calls, [])

    def test_spawn_fails(self):
        """
        When spawning fails, the socket made for the child is closed.
        """

        def refuse(*args, **kwargs):
            raise OSError("no")

        self.reactor.spawnProcess = refuse
        self.assertRaises(OSError, self.launcher.launch, bound(("A", NS1)))
        self.assertEqual(self.channel.ports[0].stopped, 1)

    def test_no_channel(self):
        """
        Without a storage channel, a version that binds a namespace does not start.
        """
        launcher = WorkerdLauncher(self.reactor, "/opt/workerd", self.run_dir, builder(), 5.0)
        self.assertRaises(StartFailed, launcher.launch, bound(("A", NS1)))
        self.assertEqual(self.reactor.spawned, [])


class CreatingReactor(MemoryReactor):
    def listenUNIX(self, address, factory, backlog=50, mode=0o666, wantPID=0):
        open(address, "w").close()
        os.chmod(address, mode)
        super().listenUNIX(address, factory, backlog, mode, wantPID)
        return FakePort(closing=succeed(None))


class StorageChannelTests(SynchronousTestCase):
    def test_listen(self):
        """
        The channel listens on the child's socket (0600) with the Site for the version's
        namespaces, replacing a stale file, and gives the socket to the owner.
        """
        reactor, sites, directory = CreatingReactor(), [], tempfile.mkdtemp()
        stale = os.path.join(directory, "c0ffee.storage.sock")
        open(stale, "w").close()
        channel = storage.StorageChannel(reactor, lambda ids: sites.append(ids) or "site")
        me = (os.getuid(), os.getgid())
        listening = channel.listen(directory, "c0ffee", bound(("A", NS2), ("B", NS1)), owner=me)
        [(path, factory, _, mode, _)] = reactor.unixServers
        self.assertEqual((path, factory, mode, sites), (stale, "site", 0o600, [(NS1, NS2)]))
        info = os.stat(path)
        self.assertEqual((stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)), (0o600, me))
        self.successResultOf(listening.stopListening())

    def test_stale_storage_sockets_removed(self):
        """
        At start, storage sockets an earlier funcplane left in the children's directory
        are removed.
        """
        run_dir = tempfile.mkdtemp()
        children = make_children_directory(run_dir)
        open(os.path.join(children, "x.storage.sock"), "w").close()
        proc = tempfile.mkdtemp()
        os.mkdir(os.path.join(proc, "self"))
        self.assertEqual(clean_run_dir(run_dir, kill=lambda *a: None, proc=proc), (0, 1))
        self.assertEqual(os.listdir(children), [])
