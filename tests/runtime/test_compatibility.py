"""
Which compatibility dates and flags a version may run with
(L{funcplane.runtime.compatibility}), and the runtime's check before it spawns one.
"""

import os
import shutil
import tempfile

import attrs
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from funcplane.errors import StartFailed
from funcplane.runtime.compatibility import (
    OLDEST_DATE,
    Compatibility,
    InvalidCompatibility,
    is_date,
    newest_date,
    read_newest,
    start_failure,
    utc_date,
)
from funcplane.runtime.host import ChildRuntime, RuntimeChoices
from funcplane.runtime.locate import find_workerd
from funcplane.runtime.protocol import WorkerdProtocol
from tests.fakes import FakeProcessReactor, spec
from tests.test_service import FakeMachine

TODAY = "2026-12-01"


class CheckTests(SynchronousTestCase):
    """
    L{Compatibility.check} refuses what workerd cannot run or the operator does not
    accept, saying what to ask for instead.
    """

    def refused(self, compatibility, date, flags=()):
        return str(self.assertRaises(InvalidCompatibility, compatibility.check, date, flags, TODAY))

    def test_dates(self):
        """
        A date from the oldest workerd reads to the newer of today and the binary's newest
        passes; one after either, before the oldest, or not a date is refused with the
        range.
        """
        compatibility = Compatibility("2026-11-24")
        for date in (OLDEST_DATE, "2020-01-01", "2024-09-23", "2026-11-24"):
            compatibility.check(date, (), TODAY)
        self.assertEqual(
            self.refused(compatibility, "2026-11-25"),
            "compatibility_date 2026-11-25 is after 2026-11-24, the newest this funcplane's workerd"
            " supports: choose a date from 2000-01-01 to 2026-11-24",
        )
        self.assertEqual(
            self.refused(Compatibility("2027-06-01"), "2026-12-02"),
            "compatibility_date 2026-12-02 is in the future: choose a date from 2000-01-01 to 2026-12-01",
        )
        self.assertIn("is before the oldest date workerd reads", self.refused(compatibility, "1999-12-31"))
        for wrong in ("2024-13-01", "2024-02-30", "24-01-01", "2024-01-01T00:00", "", None, 20240101):
            self.assertIn("is not a date: write it as YYYY-MM-DD", self.refused(compatibility, wrong))

    def test_flags(self):
        """
        Flag names are checked (lower-case, digits, _), none twice, at most 64; the
        operator's allow and deny lists are applied, naming what is refused and what is
        accepted.
        """
        compatibility = Compatibility("2026-11-24")
        compatibility.check("2024-09-23", ("nodejs_compat", "global_navigator"), TODAY)
        self.assertIn("'NodeJS' is not a compatibility flag name", self.refused(compatibility, "2024-09-23", ("NodeJS",)))
        self.assertIn("'a b' is not a compatibility flag name", self.refused(compatibility, "2024-09-23", ("a b",)))
        self.assertIn("names a flag twice", self.refused(compatibility, "2024-09-23", ("x", "x")))
        self.assertIn("at most 64", self.refused(compatibility, "2024-09-23", tuple(f"f{i}" for i in range(65))))
        narrowed = attrs.evolve(compatibility, allowed=frozenset({"nodejs_compat", "url_standard"}),
                                denied=frozenset({"url_standard"}))
        narrowed.check("2024-09-23", ("nodejs_compat",), TODAY)
        self.assertEqual(
            self.refused(narrowed, "2024-09-23", ("url_standard", "streams_enable_constructors")),
            "this funcplane's operator does not allow the compatibility flags streams_enable_constructors,"
            " url_standard; it accepts nodejs_compat",
        )
        denied = attrs.evolve(compatibility, denied=frozenset({"nodejs_compat"}))
        self.assertEqual(
            self.refused(denied, "2024-09-23", ("nodejs_compat",)),
            "this funcplane's operator does not allow the compatibility flag nodejs_compat",
        )

    def test_helpers(self):
        """
        Dates are read strictly; the UTC date of a time; the newest date is read from
        workerd's refusal, else from its version.
        """
        self.assertEqual((is_date("2024-02-29"), is_date("2023-02-29")), (True, False))
        self.assertEqual(utc_date(1796083200 - 1), "2026-11-30")
        self.assertEqual(
            read_newest(b'service probe: This Worker requires compatibility date "2999-12-31", but the'
                        b' newest date supported by this server binary is "2026-11-24".\n'),
            "2026-11-24",
        )
        self.assertEqual(read_newest(b"nothing", b"workerd 2026-11-17\n"), "2026-11-17")
        self.assertIsNone(read_newest(b"", b""))


class RuntimeCheckTests(SynchronousTestCase):
    """
    The runtime refuses a version's compatibility before it spawns anything.
    """

    def setUp(self):
        self.reactor = FakeProcessReactor()
        self.reactor.advance(1796083200)
        run_dir = tempfile.mkdtemp(prefix="fp")
        self.addCleanup(shutil.rmtree, run_dir, True)
        os.makedirs(os.path.join(run_dir, "children"))
        self.runtime = ChildRuntime(
            self.reactor,
            RuntimeChoices(workerd="/opt/workerd", run_dir=run_dir, data_dir="/data",
                           flags_denied=frozenset({"nodejs_compat"})),
            machine=FakeMachine(),
            in_thread=lambda f, *args: succeed(f(*args)),
        )
        self.successResultOf(self.runtime.startService())
        self.addCleanup(self.runtime.stopService)

    def test_refused_before_spawning(self):
        """
        A date after the binary's newest, or a denied flag, raises and spawns no process;
        the version's own date is what is checked, the default only when it has none.
        """
        late = attrs.evolve(spec(), compatibility_date="2026-11-30")
        self.assertIn("is after 2026-11-24", str(self.assertRaises(InvalidCompatibility, self.runtime.launch, late)))
        flagged = attrs.evolve(spec(), compatibility_flags=("nodejs_compat",))
        self.assertRaises(InvalidCompatibility, self.runtime.launch, flagged)
        self.assertEqual(self.reactor.spawned, [])
        self.runtime.launch(attrs.evolve(spec(), compatibility_date="2021-01-01"))
        self.runtime.launch(spec())
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_default_after_newest(self):
        """
        An operator's default date after what the binary supports fails the start, saying
        what to do.
        """
        runtime = ChildRuntime(
            self.reactor,
            RuntimeChoices(workerd="/opt/workerd", run_dir="/nonexistent", data_dir="/data",
                           compatibility_date="2026-11-30"),
            machine=FakeMachine(),
        )
        failure = self.failureResultOf(runtime.startService(), ValueError)
        self.assertEqual(
            str(failure.value),
            "--compatibility-date 2026-11-30 is after 2026-11-24, the newest date /opt/workerd"
            " supports: choose an earlier one",
        )


class ExperimentalTests(SynchronousTestCase):
    """
    workerd's refusal of a flag that needs --experimental says that funcplane never
    passes it.
    """

    def test_note(self):
        """
        The start fails as a refused compatibility, with workerd's message and funcplane's
        note; other start failures stay script errors.
        """
        protocol = WorkerdProtocol(spec())
        protocol.stderr_tail.append(
            "service main: The compatibility flag experimental is experimental and may break or be"
            " removed in a future version of workerd. To use this flag, you must pass"
            " --experimental on the command line."
        )
        protocol.processEnded(FakeReason())
        failure = self.successResultOf(protocol.ready.when())
        self.assertIsInstance(failure, InvalidCompatibility)
        self.assertTrue(str(failure).startswith("service main: The compatibility flag experimental"))
        self.assertTrue(str(failure).endswith(
            "funcplane never runs workerd with --experimental: remove the flag from compatibility_flags"
        ))
        self.assertIsInstance(start_failure("service main: No such compatibility flag: x"), InvalidCompatibility)
        plain = start_failure('service main: Uncaught Error: No such module "node:buffer".')
        self.assertEqual((type(plain), plain.reason), (StartFailed, "ScriptError"))


class FakeReason:
    value = "exited"


class ProbeTests(TestCase):
    """
    The real workerd says which dates it supports.
    """

    async def test_newest(self):
        """
        The probe reads a date from the pinned binary, no earlier than the one its
        version names, and leaves no file behind.
        """
        workerd = find_workerd()
        directory = tempfile.mkdtemp(prefix="fpprobe")
        self.addCleanup(shutil.rmtree, directory, True)
        newest = await newest_date(reactor, workerd, directory)
        self.assertTrue(is_date(newest))
        self.assertGreaterEqual(newest, "2026-11-17")
        self.assertEqual(os.listdir(directory), [])
