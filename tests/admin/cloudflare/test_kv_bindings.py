"""
KV namespace bindings through both APIs: a wrangler upload's C{kv_namespace} binding and
the seed API's C{kv_namespaces}, checked against the namespaces that exist, kept by
C{inherit}, shown by the settings and the function, and what a namespace delete says
while a deployed version binds it.
"""

from funcplane.model import KV_NAMESPACE, Binding
from tests.admin.cloudflare.harness import BASE, INDEX, SCRIPT, UPLOAD, CloudflareCase
from tests.admin.cloudflare.test_upload import body, metadata

NAMESPACES = BASE + "/storage/kv/namespaces"


class KVBindingUploadTests(CloudflareCase):
    def setUp(self):
        super().setUp()
        self.ns = self.ok("POST", NAMESPACES, {"title": "hello-counter"})["id"]

    def binding(self, namespace_id=None, name="COUNTER"):
        return {"name": name, "type": "kv_namespace", "namespace_id": namespace_id or self.ns}

    def test_bound_and_inherited(self):
        """
        An upload binding a namespace by id gives the version a kv_namespace binding, shown
        by the settings with its namespace_id; the next upload's C{inherit} keeps it, and the
        spec the child starts from has it.
        """
        self.upload(metadata(bindings=[self.binding()]), INDEX)
        settings = self.ok("GET", SCRIPT + "/settings")
        self.assertEqual(settings["bindings"], [{"name": "COUNTER", "type": "kv_namespace", "namespace_id": self.ns}])
        self.upload(metadata(bindings=[{"name": "COUNTER", "type": "inherit"}]), INDEX)
        self.assertEqual(self.ok("GET", SCRIPT + "/settings")["bindings"], settings["bindings"])
        latest = self.launcher.launched[-1]
        self.assertEqual(latest.spec.bindings, (Binding("COUNTER", KV_NAMESPACE, self.ns),))

    def test_unknown_namespace(self):
        """
        A binding naming a namespace that does not exist, or with no namespace_id, is
        refused and nothing starts.
        """
        self.assertCfError(
            self.call("PUT", SCRIPT, *self.parts(metadata(bindings=[self.binding("0" * 32)]))),
            400,
            10057,
            f"KV namespace '{'0' * 32}' is not valid: binding COUNTER",
        )
        self.assertCfError(
            self.call("PUT", SCRIPT, *self.parts(metadata(bindings=[{"name": "X", "type": "kv_namespace"}]))),
            400,
            10057,
            "kv_namespace binding X needs a string 'namespace_id'",
        )
        self.assertEqual(self.launcher.launched, [])

    def parts(self, meta):
        return body(meta, INDEX), UPLOAD

    def test_delete_refused_while_bound(self):
        """
        A namespace the deployed version binds is not deleted, and the refusal names the
        binding; once a new version without it is deployed, it is.
        """
        self.upload(metadata(bindings=[self.binding()]), INDEX)
        self.assertCfError(
            self.call("DELETE", NAMESPACES + "/" + self.ns), 409, 10021, "is bound by hello:gen1 COUNTER"
        )
        self.upload(metadata(bindings=[]), INDEX)
        self.ok("DELETE", NAMESPACES + "/" + self.ns)

    def test_seed_api(self):
        """
        The seed API's deploy takes C{kv_namespaces} as wrangler.toml has them, refuses an
        unknown id, and C{GET /api/functions/NAME} shows each version's bindings.
        """
        code = "export default { fetch() { return new Response('hi') } }"
        deploy = {"runtime": "js", "code": code, "kv_namespaces": [{"binding": "NS", "id": self.ns}]}
        status, answer = self.call("POST", "http://127.0.0.1:8081/api/deploy/seed", deploy)
        self.assertEqual(status, 200, answer)
        status, shown = self.call("GET", "http://127.0.0.1:8081/api/functions/seed")
        self.assertEqual(
            shown["function"]["versions"][0]["bindings"], [{"name": "NS", "type": "kv_namespace", "namespace_id": self.ns}]
        )
        deploy["kv_namespaces"] = [{"binding": "NS", "id": "f" * 32}]
        status, answer = self.call("POST", "http://127.0.0.1:8081/api/deploy/seed", deploy)
        self.assertEqual((status, answer["error"]["code"]), (400, "invalid_binding"), answer)
        deploy["kv_namespaces"] = [{"binding": "NS"}]
        status, answer = self.call("POST", "http://127.0.0.1:8081/api/deploy/seed", deploy)
        self.assertEqual((status, answer["error"]["message"]), (400, "KV binding NS needs a string 'id'"), answer)
        self.assertEqual(len(self.launcher.launched), 1)
