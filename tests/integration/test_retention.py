"""
Old versions at a real funcplane: a superseded version is frozen as soon as its requests
end, versions past C{--keep-versions} are deleted with their processes, and with
C{--scale-to-zero} nothing starts when funcplane starts.
"""

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from tests.integration.harness import Funcplane, processes_in
from tests.integration.harness import eventually, sleep
from tests.integration.test_lifecycle import process_state

SLOW = """export default { async fetch(request) {
  if (new URL(request.url).pathname == "/slow") await new Promise(r => setTimeout(r, 500));
  return new Response("VERSION");
} }"""


def code(version):
    return SLOW.replace("VERSION", version)


def version_id(fp, function, version):
    """
    The id of C{version} of C{function}, from the route table.
    """
    return fp.service.routes.resolve(f"{version}.{function}.func.local".encode())


class RetentionTests(TestCase):
    """
    Deploys one after another, at a funcplane that freezes idle versions only after 30 s.
    """

    timeout = 60

    async def versions(self, fp, function):
        """
        C{{name: (state, pid)}} of C{function}'s versions, as the admin API lists them.
        """
        status, body = await fp.api("GET", f"/api/functions/{function}")
        self.assertEqual(status, 200, body)
        return {v["name"]: (v["state"], v["pid"]) for v in body["function"]["versions"]}

    async def test_superseded_frozen_when_its_request_ends(self):
        """
        The version a deploy replaces keeps serving the request it has in flight, to its
        end, and is frozen (SIGSTOP: state T) as soon as that request ends, long before
        the 30 s freeze period.
        """
        fp = await Funcplane(self, freeze_after=30.0).start()
        await fp.deploy("slow", code("v1"), version="v1")
        slow = ensureDeferred(fp.get("slow.func.local", "/slow"))
        await sleep(0.2)
        status, body = await fp.deploy("slow", code("v2"), version="v2")
        self.assertEqual(status, 200, body)
        self.assertEqual((await self.versions(fp, "slow"))["v1"][0], "running")
        self.assertEqual(await slow, (200, "v1"))
        v1 = version_id(fp, "slow", "v1")
        await eventually(lambda: fp.service.supervisor.state(v1) == "frozen", seconds=2)
        versions = await self.versions(fp, "slow")
        self.assertEqual(versions["v1"][0], "frozen")
        # SIGSTOP takes a moment to stop every thread of the process.
        await eventually(lambda: process_state(versions["v1"][1]) == "T", seconds=2)
        self.assertEqual(versions["v2"][0], "running")
        self.assertEqual(await fp.get("v1.slow.func.local"), (200, "v1"))

    async def test_flood_pruned(self):
        """
        Six deploys with --keep-versions 3 leave the newest three versions: the older ones
        and their processes are gone, their hosts answer 404, and the two superseded ones
        kept are frozen, not running.
        """
        fp = await Funcplane(self, keep_versions=3, freeze_after=30.0).start()
        for i in range(1, 7):
            status, body = await fp.deploy("flood", code(f"v{i}"), version=f"v{i}")
            self.assertEqual(status, 200, body)
        versions = await self.versions(fp, "flood")
        self.assertEqual(sorted(versions), ["v4", "v5", "v6"])
        states = [versions[v][0] for v in ("v4", "v5", "v6")]
        self.assertEqual(states, ["frozen", "frozen", "running"])
        frozen = [versions[v][1] for v in ("v4", "v5")]
        await eventually(lambda: {process_state(pid) for pid in frozen} == {"T"}, seconds=2)
        await eventually(lambda: len(processes_in(fp.run_dir)) == 3)
        status, text = await fp.get("v1.flood.func.local")
        self.assertEqual((status, text), (404, "function flood has no version or alias v1\n"))
        self.assertEqual(await fp.get("flood.func.local"), (200, "v6"))


class ScaleToZeroBootTests(TestCase):
    """
    Starting funcplane with --scale-to-zero on a data directory that has functions.
    """

    timeout = 60

    async def test_nothing_started_at_boot(self):
        """
        After a restart with --scale-to-zero no version has been started, not even a
        latest one; the first request starts it and is answered.
        """
        first = await Funcplane(self, scale_to_zero=True).start()
        await first.deploy("cold", code("v1"), version="v1")
        await first.deploy("other", code("o1"), version="o1")
        await first.stop()
        second = await Funcplane(self, data_dir=first.data_dir, scale_to_zero=True).start()
        self.assertEqual(second.service.supervisor.running_count(), 0)
        await sleep(0.3)
        self.assertEqual(processes_in(second.run_dir), [])
        self.assertEqual(await second.get("cold.func.local"), (200, "v1"))
        self.assertEqual(second.service.supervisor.running_count(), 1)
