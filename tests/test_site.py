"""
The admin Site's root.
"""

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from funcplane.routing import RouteTable
from funcplane.site import AdminRoot


class Admin(Resource):
    isLeaf = True

    def render(self, request):
        return b"admin " + request.path


class AdminRootTests(SynchronousTestCase):
    def setUp(self):
        self.client = StubTreq(AdminRoot(RouteTable("func.local"), Admin()))

    def request(self, host):
        response = self.successResultOf(
            self.client.get("http://127.0.0.1:8081/api/functions", headers={"Host": host})
        )
        return response.code, self.successResultOf(response.content())

    def test_admin_hosts_served(self):
        self.assertEqual(self.request("127.0.0.1:8081"), (200, b"admin /api/functions"))

    def test_function_host_misdirected(self):
        """
        A function host on a connection that was handed to the admin API is refused with
        421, which tells the client to try again on a new connection.
        """
        self.assertEqual(
            self.request("hello.func.local"),
            (421, b"function hosts are served on connections of their own; reconnect\n"),
        )
