"""
Tests for L{funcplane.admin.cloudflare.content}: a script's code read back, as Download
Worker (C{GET .../workers/scripts/NAME}) and C{.../content/v2} give it.
"""

from funcplane.admin.cloudflare.upload import multipart_parts
from tests.admin.cloudflare.harness import INDEX, SCRIPT, CloudflareCase, cf
from tests.admin.cloudflare.test_upload import WASM, metadata, module
from tests.fakes import AUTH

SERVICE_WORKER = b'addEventListener("fetch", e => e.respondWith(new Response("sw")))'
SECOND = module("index.js", "export default { fetch() { return new Response('two') } }")


class DownloadTests(CloudflareCase):
    """
    Download Worker answers the code of the version the script's own host serves, not
    JSON.
    """

    def get(self, url):
        """
        The status, headers and bytes of an answer.
        """
        d = self.client.get(url, headers=AUTH)
        self.client.flush()
        response = self.successResultOf(d)
        return response.code, response.headers, self.successResultOf(self.client.content(response))

    def modules(self, headers, content):
        """
        The C{(name, Content-Type, bytes)} of a multipart answer's parts, in order.
        """
        _, files = multipart_parts(content, headers.getRawHeaders(b"content-type")[0].decode(), 1 << 20)
        return [(name, kind, data) for name, _, kind, data in files]

    def test_module_worker(self):
        """
        A module worker comes as the multipart body it was uploaded in, main module first
        and named by CF-Entrypoint, each module with its type and exact bytes; after a
        later upload that is not deployed, still the deployed version's.
        """
        self.upload(metadata(), INDEX, module("./add.wasm", WASM, "application/wasm"), module("./t.txt", "t", "text/plain"))
        self.upload(metadata(), SECOND, url=SCRIPT + "/versions", method="POST")
        status, headers, content = self.get(SCRIPT)
        self.assertEqual((status, headers.getRawHeaders(b"cf-entrypoint")), (200, [b"index.js"]))
        self.assertEqual(
            self.modules(headers, content),
            [
                ("index.js", "application/javascript+module", b"export default { fetch() { return new Response('hi') } }"),
                ("./add.wasm", "application/wasm", WASM),
                ("./t.txt", "text/plain", b"t"),
            ],
        )

    def test_service_worker(self):
        """
        A service worker comes as its script, as JavaScript.
        """
        self.upload(metadata(main_module=None, body_part="worker.js"), module("worker.js", SERVICE_WORKER, "application/javascript"))
        status, headers, content = self.get(SCRIPT)
        self.assertEqual(
            (status, headers.getRawHeaders(b"content-type"), content),
            (200, [b"application/javascript; charset=utf-8"], SERVICE_WORKER),
        )

    def test_not_deployed(self):
        """
        A function with only uploaded versions downloads its newest, as does content/v2
        without a version; content/v2 with one gives that one.
        """
        self.upload(metadata(), INDEX, url=SCRIPT + "/versions", method="POST")
        self.upload(metadata(), SECOND, url=SCRIPT + "/versions", method="POST")
        for url in [SCRIPT, SCRIPT + "/content/v2"]:
            status, headers, content = self.get(url)
            self.assertEqual((status, self.modules(headers, content)[0][2]), (200, b"export default { fetch() { return new Response('two') } }"))
        status, headers, content = self.get(SCRIPT + f"/content/v2?version={cf(1)}")
        self.assertEqual(self.modules(headers, content)[0][2], b"export default { fetch() { return new Response('hi') } }")

    def test_unknown(self):
        """
        An unknown script is Cloudflare's 10007 in the envelope, for both routes.
        """
        for url in [SCRIPT, SCRIPT + "/content/v2"]:
            self.assertCfError(self.call("GET", url), 404, 10007, "hello")
