"""
What a deploy that fails tells the operator: a warning naming the function, the version and
the runtime's reason, besides the start the supervisor logged.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import Conflict, StartFailed
from funcplane.platform import Platform
from funcplane.routing import RouteTable
from tests.fakes import FakeSupervisor, deployment, memory_store


class DeployFailureLogTests(SynchronousTestCase):
    """
    L{Platform.deploy}'s warning when a deploy fails.
    """

    def setUp(self):
        self.store = memory_store(self)
        self.supervisor = FakeSupervisor()
        self.platform = Platform(
            Clock(), self.store, self.supervisor, RouteTable("func.local"), new_id=lambda: "id-1"
        )

    def deploy(self, d):
        with capturedLogs() as captured:
            result = Deferred.fromCoroutine(self.platform.deploy(d))
        warnings = [
            e
            for e in captured
            if e["log_level"] == LogLevel.warn
            and e["log_namespace"].startswith("funcplane.platform")
        ]
        return result, warnings

    def test_start_failed(self):
        """
        A version that does not start is logged at warn with its function, its version and
        the runtime's own text; the caller gets the same error.
        """
        self.supervisor.start_error = StartFailed(
            "Uncaught SyntaxError: Unexpected token '}'\n  at worker.js:1:7"
        )
        d, [warning] = self.deploy(deployment("hello", "v1"))
        self.failureResultOf(d, StartFailed)
        self.assertEqual(
            (warning["function"], warning["version"], warning["what"], warning["error"]),
            ("hello", "v1", "deploy", "StartFailed"),
        )
        self.assertEqual(
            warning["reason"], "Uncaught SyntaxError: Unexpected token '}'\n  at worker.js:1:7"
        )

    def test_upload_refused_when_publishing(self):
        """
        A version that started but could not be published (the function changed meanwhile)
        is logged too, as an upload when it was only uploaded.
        """

        class RacingStore:
            def __init__(self, store):
                self._store = store

            def __getattr__(self, name):
                return getattr(self._store, name)

            def publish(self, deployment, spec, created_at, deployment_id, built_on):
                return self._store.publish(deployment, spec, created_at, deployment_id, "gone")

        self.platform = Platform(
            Clock(), RacingStore(self.store), self.supervisor, RouteTable("func.local"),
            new_id=lambda: "id-1",
        )
        d, [warning] = self.deploy(deployment("hello", "v1", deploy=False))
        failure = self.failureResultOf(d, Conflict)
        self.assertEqual((warning["what"], warning["error"]), ("upload", "Conflict"))
        self.assertEqual(warning["reason"], str(failure.value))
        self.assertEqual(self.supervisor.stopped, ["id-1"])

    def test_success_warns_nothing(self):
        """
        A deploy that succeeds logs no warning.
        """
        d, warnings = self.deploy(deployment("hello", "v1"))
        self.successResultOf(d)
        self.assertEqual(warnings, [])
