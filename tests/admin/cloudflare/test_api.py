"""
Tests for L{funcplane.admin.cloudflare.api}: the v4 API made of its resource modules
serves exactly the routes it always served.
"""

import json

from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane import errors
from funcplane.admin.auth import TokenChecker, token_hash
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.cloudflare.unsupported import REFUSED
from funcplane.admin.parse import Limits
from tests.fakes import AUTH, TOKEN

ACCOUNT = "/accounts/<account>"
SCRIPT = ACCOUNT + "/workers/scripts/<name>"
GET = ("GET", "HEAD")
# (path, methods, endpoint, the module its handler lives in)
ROUTES = {
    (ACCOUNT + "/storage/kv/namespaces", GET, "kv_namespaces", "kv"),
    (ACCOUNT + "/storage/kv/namespaces", ("POST",), "kv_create_namespace", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>", GET, "kv_namespace", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>", ("PUT",), "kv_rename_namespace", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>", ("DELETE",), "kv_delete_namespace", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/keys", GET, "kv_keys", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/values/<path:key>", GET, "kv_value", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/values/<path:key>", ("PUT",), "kv_put", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/values/<path:key>", ("DELETE",), "kv_delete", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/metadata/<path:key>", GET, "kv_metadata", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/bulk", ("PUT",), "kv_bulk_put", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/bulk", ("DELETE",), "kv_bulk_delete", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/bulk/delete", ("POST",), "kv_bulk_delete", "kv"),
    (ACCOUNT + "/storage/kv/namespaces/<namespace_id>/bulk/get", ("POST",), "kv_bulk_get", "kv"),
    (ACCOUNT + "/workers/subdomain", GET, "subdomain", "accounts"),
    ("/accounts", GET, "accounts", "accounts"),
    ("/memberships", GET, "memberships", "accounts"),
    ("/user", GET, "user", "accounts"),
    ("/user/tokens/verify", GET, "user", "accounts"),
    (ACCOUNT + "/workers/services/<name>", GET, "service", "scripts"),
    (ACCOUNT + "/workers/services/<name>", ("DELETE",), "delete", "scripts"),
    (SCRIPT, ("DELETE",), "delete", "scripts"),
    (SCRIPT, ("PUT",), "put_script", "scripts"),
    (SCRIPT, GET, "download", "content"),
    (ACCOUNT + "/workers/scripts", GET, "list_scripts", "scripts"),
    (SCRIPT + "/versions", ("POST",), "upload_version", "scripts"),
    (SCRIPT + "/content/v2", GET, "content", "content"),
    (SCRIPT + "/settings", GET, "settings", "scripts"),
    (SCRIPT + "/settings", ("PATCH",), "patch_settings", "scripts"),
    (SCRIPT + "/script-settings", ("GET", "HEAD", "PATCH"), "script_settings", "scripts"),
    (SCRIPT + "/subdomain", ("GET", "HEAD", "POST"), "script_subdomain", "scripts"),
    (SCRIPT + "/references", GET, "references", "scripts"),
    (SCRIPT + "/versions", GET, "versions", "versions"),
    (SCRIPT + "/versions/<version>", GET, "version", "versions"),
    (SCRIPT + "/deployments", GET, "deployments", "deployments"),
    (SCRIPT + "/deployments", ("POST",), "deploy", "deployments"),
    (SCRIPT + "/secrets", GET, "secrets", "secrets"),
    (SCRIPT + "/secrets", ("PUT",), "put_secret", "secrets"),
    (SCRIPT + "/secrets/<secret>", ("DELETE",), "delete_secret", "secrets"),
    (SCRIPT + "/schedules", GET, "schedules", "schedules"),
    (SCRIPT + "/schedules", ("PUT",), "put_schedules", "schedules"),
    (ACCOUNT + "/d1/database", GET, "d1_list", "d1"),
    (ACCOUNT + "/d1/database", ("POST",), "d1_create", "d1"),
    (ACCOUNT + "/d1/database/<database>", GET, "d1_get", "d1"),
    (ACCOUNT + "/d1/database/<database>", ("DELETE",), "d1_delete", "d1"),
    (ACCOUNT + "/d1/database/<database>/query", ("POST",), "d1_query", "d1"),
    (ACCOUNT + "/d1/database/<database>/raw", ("POST",), "d1_raw", "d1"),
    (ACCOUNT + "/d1/database/<database>/import", ("POST",), "d1_import", "d1"),
    ("/d1/imports/<token>", ("PUT",), "d1_upload", "d1"),
    (SCRIPT + "/tails", ("POST",), "create_tail", "tails"),
    (SCRIPT + "/tails/<tail_id>", ("DELETE",), "delete_tail", "tails"),
    ("/tails/<tail_id>", GET, "tail_socket", "tails"),
    (ACCOUNT + "/workers/tails/by-consumer/<name>", GET, "tail_consumers", "tails"),
    (SCRIPT + "/aliases", GET, "aliases", "aliases"),
    (SCRIPT + "/aliases/<alias>", ("PUT",), "put_alias", "aliases"),
    (SCRIPT + "/assets-upload-session", ("POST",), "assets_upload_session", "assets"),
    (ACCOUNT + "/workers/assets/upload", ("POST",), "assets_upload", "assets"),
}
# The refusals of the features funcplane lacks: each path, and every path under a prefix.
for _number, (_path, _, _methods, _deeper) in enumerate(REFUSED):
    _methods = tuple(sorted(set(_methods) | ({"HEAD"} if "GET" in _methods else set())))
    ROUTES.add((_path, _methods, f"unsupported_{_number}", "unsupported"))
    if _deeper:
        ROUTES.add((_path + "/<path:rest>", _methods, f"unsupported_{_number}_deeper", "unsupported"))


class RouteTests(SynchronousTestCase):
    """
    The routes of the resource modules add up to the one v4 API.
    """

    def test_routes(self):
        """
        Every path and method wrangler uses is routed, by the module of its resource, to
        the handler of that name: no endpoint name is taken twice (a later handler would
        silently replace an earlier one), and no route is lost or added.
        """
        app = CloudflareAPI.app
        found = set()
        for rule in app.url_map.iter_rules():
            handler = app.endpoints[rule.endpoint].__wrapped__
            module = handler.__module__.rpartition(".")[2]
            self.assertEqual(handler.__name__, rule.endpoint)
            found.add((rule.rule, tuple(sorted(rule.methods)), rule.endpoint, module))
        self.assertEqual(found, ROUTES)

    def test_bound_per_instance(self):
        """
        Each instance's resource dispatches to that instance: the routes of the one shared
        app see the collaborators of the instance they are reached through.
        """
        answers = []
        for label in ["first", "second"]:
            api = CloudflareAPI(_Platform(label), TokenChecker(token_hash(TOKEN)), Limits(), Clock(), None)
            client = StubTreq(api.resource())
            response = self.successResultOf(
                client.get("http://admin/accounts/a/workers/scripts/hello/versions", headers=AUTH)
            )
            answers.append(json.loads(self.successResultOf(response.content()))["errors"][0]["message"])
        self.assertEqual(answers, ["no function in first", "no function in second"])


class _Platform:
    """
    A platform that knows no function, and says whose it is.
    """

    def __init__(self, label):
        self._label = label

    def function(self, name):
        return fail(errors.NoSuchFunction(f"no function in {self._label}"))
