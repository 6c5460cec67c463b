"""
A small app built with Vite (pinned in package.json) deployed with the unmodified
`wrangler deploy` and its `[assets]`: SPA fallback, a `_redirects` file, an ASSETS binding,
an assets-only project, and a second deploy that uploads only the file that changed.
"""

import os

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest

from tests.integration.harness import Funcplane
from tests.integration.test_wrangler import ROOT, WranglerCase

VITE = os.path.join(ROOT, "node_modules", ".bin", "vite")
HOST = "vite-app.func.local"

FILES = {
    "wrangler.toml": 'name = "vite-app"\nmain = "src/worker.js"\ncompatibility_date = "2025-06-01"\n'
    '[assets]\ndirectory = "./dist"\nnot_found_handling = "single-page-application"\nbinding = "ASSETS"\n',
    "index.html": '<!doctype html><html><head><title>app</title></head><body><div id="app"></div>'
    '<script type="module" src="/main.js"></script></body></html>\n',
    "main.js": 'document.getElementById("app").textContent = "hello from vite";\n',
    "public/_redirects": "/old /about.txt 301\n",
    "public/about.txt": "about v1\n",
    "src/worker.js": """export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/api/about") {
      const about = await env.ASSETS.fetch(new Request(new URL("/about.txt", request.url)));
      return new Response(`worker read: ${(await about.text()).trim()}`);
    }
    return new Response(`worker: ${url.pathname}`);
  }
};
""",
}


class ViteTests(WranglerCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(VITE):
            raise SkipTest("vite is not installed: run ./dev setup (npm ci installs it)")
        self.write_project(FILES)

    async def build(self):
        out, err, code = await getProcessOutputAndValue(
            VITE, ["build", "--logLevel", "warn"], env=self.environment(), path=self.project, reactor=reactor
        )
        self.assertEqual(code, 0, (out + err).decode("utf-8", "replace"))

    async def get(self, path, host=HOST, **headers):
        code, content = await self.fp.request("GET", path, host=host, headers={k.replace("_", "-"): v for k, v in headers.items()})
        return code, content.decode("utf-8")

    async def test_vite_app(self):
        """
        wrangler deploy uploads the built app's assets: the page and its hashed script are
        served, a navigation to an unknown route gets the SPA, the worker answers its own
        routes and reads an asset through env.ASSETS, _redirects applies; a second deploy
        with one file changed uploads only that file, and serves it.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        await self.build()
        scripts = os.listdir(os.path.join(self.project, "dist", "assets"))
        self.assertEqual(len(scripts), 1)
        output = await self.wrangler("deploy")
        self.assertIn("Current Version ID:", output)
        uploads = self.fp.service.uploads
        self.assertEqual(uploads.received, 3)

        code, page = await self.get("/")
        self.assertEqual(code, 200)
        self.assertIn(f"/assets/{scripts[0]}", page)
        code, script = await self.get(f"/assets/{scripts[0]}")
        self.assertIn("hello from vite", script)
        self.assertEqual(await self.get("/some/route", Sec_Fetch_Mode="navigate"), (200, page))
        self.assertEqual(await self.get("/api/about"), (200, "worker read: about v1"))
        self.assertEqual(await self.get("/api/other"), (200, "worker: /api/other"))
        code, _, headers = await self.raw("/old")
        self.assertEqual((code, headers.getRawHeaders(b"location")), (301, [b"/about.txt"]))

        self.write_project({"public/about.txt": "about v2\n"})
        await self.build()
        output = await self.wrangler("deploy")
        self.assertIn("Uploaded 1 file (2 already uploaded)", output)
        self.assertEqual(uploads.received, 4)
        self.assertEqual(await self.get("/api/about"), (200, "worker read: about v2"))
        self.assertEqual((await self.get("/"))[1], page)

        # Nothing changed: nothing is uploaded, and the deploy still has its assets.
        output = await self.wrangler("deploy")
        self.assertIn("No updated asset files to upload", output)
        self.assertEqual(uploads.received, 4)
        self.assertEqual(await self.get("/about.txt"), (200, "about v2\n"))

    async def raw(self, path):
        response = await self.fp.client.request(
            "GET", f"http://127.0.0.1:{self.fp.port}{path}", headers={"Host": HOST}, allow_redirects=False
        )
        return response.code, await response.content(), response.headers

    async def test_assets_only(self):
        """
        A project with [assets] and no main deploys and serves its files; an unknown path
        is 404 (not_found_handling none).
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        self.write_project({
            "wrangler.toml": 'name = "static-only"\ncompatibility_date = "2025-06-01"\n[assets]\ndirectory = "./site"\n',
            "site/index.html": "<p>static</p>\n",
        })
        await self.wrangler("deploy")
        self.assertEqual(await self.get("/", host="static-only.func.local"), (200, "<p>static</p>\n"))
        self.assertEqual((await self.get("/missing", host="static-only.func.local"))[0], 404)
