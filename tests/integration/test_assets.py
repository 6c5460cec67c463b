"""
Static assets served by a real workerd: funcplane's asset worker, its rules (ported from
Cloudflare's), the ASSETS binding, run_worker_first, and each version's own assets through
a rollback and a split.  Assets are uploaded as wrangler uploads them (tests/integration/
assets.py).
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from tests.integration.assets import ACCOUNT, deploy_assets
from tests.integration.harness import Funcplane, raw_connection

SITE = {
    "/index.html": b"<h1>home</h1>",
    "/about/index.html": b"<h1>about</h1>",
    "/page.html": b"<h1>page</h1>",
    "/404.html": b"<h1>not here</h1>",
    "/blog/404.html": b"<h1>no such post</h1>",
    "/app.js": b"console.log('app')",
    "/style.css": b"body{}",
    "/data.bin": bytes(range(256)) * 4,
    "/users/id.html": b"<h1>a user</h1>",
    "/Makefile": b"all:",
}
REDIRECTS = """# comments and blank lines are ignored

/old /page 301
/temp /page
/users/:id /users/id 200
/docs/* /about/:splat 302
/away https://example.com/x 308
"""
HEADERS = """/app.js
  X-Frame-Options: DENY
  Cache-Control: no-store
/blog/:post
  X-Post: :post
/*
  X-Everywhere: yes
"""
WORKER = """export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/via-binding") {
      const asset = await env.ASSETS.fetch(new Request(new URL("/app.js", request.url)));
      const missing = await env.ASSETS.fetch(new Request(new URL("/nope", request.url)));
      return new Response(`binding: ${asset.status} ${await asset.text()} ${missing.status}`);
    }
    return new Response(`worker: ${request.method} ${url.pathname}`);
  }
};
"""


class AssetsCase(TestCase):
    timeout = 60

    async def setUp(self):
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)

    async def deploy(self, name, files=SITE, config=None, **kwargs):
        code, answer = await deploy_assets(self.fp, name, files, config, **kwargs)
        self.assertEqual(code, 200, answer)
        return answer["result"]

    async def get(self, host, path, method="GET", **headers):
        """
        C{(status, headers by lower-case name, body)}, redirects not followed.
        """
        raw = {"Host": [host]}
        raw.update({name.replace("_", "-"): [value] for name, value in headers.items()})
        response = await self.agent.request(
            method.encode(), f"http://127.0.0.1:{self.fp.port}{path}".encode(),
            Headers({k.encode(): [v.encode() for v in vs] for k, vs in raw.items()}),
        )
        body = await readBody(response)
        found = {k.decode().lower(): b", ".join(v).decode() for k, v in response.headers.getAllRawHeaders()}
        if isinstance(response.length, int):
            # Twisted keeps Content-Length out of the headers it shows.
            found["content-length"] = str(response.length)
        return response.code, found, body


class ServingTests(AssetsCase):
    async def setUp(self):
        await super().setUp()
        await self.deploy(
            "site", config={"not_found_handling": "404-page", "_redirects": REDIRECTS, "_headers": HEADERS},
        )
        self.host = "site.func.local"

    async def test_files_and_types(self):
        """
        Files are served with wrangler's Content-Type (none for an unknown extension), a
        strong ETag from the hash, Cloudflare's Cache-Control, and their Content-Length.
        """
        code, headers, body = await self.get(self.host, "/style.css")
        self.assertEqual((code, body), (200, b"body{}"))
        self.assertEqual(headers["content-type"], "text/css; charset=utf-8")
        self.assertEqual(headers["cache-control"], "public, max-age=0, must-revalidate")
        self.assertRegex(headers["etag"], r'^"[0-9a-f]{32}"$')
        self.assertEqual(headers["content-length"], "6")
        code, headers, body = await self.get(self.host, "/Makefile")
        self.assertEqual((code, body), (200, b"all:"))
        self.assertNotIn("content-type", headers)

    async def test_conditional(self):
        """
        If-None-Match with the ETag (strong or weak) is answered 304 without a body.
        """
        _, headers, _ = await self.get(self.host, "/app.js")
        for tag in (headers["etag"], "W/" + headers["etag"]):
            code, again, body = await self.get(self.host, "/app.js", If_None_Match=tag)
            self.assertEqual((code, body, again["etag"]), (304, b"", headers["etag"]))
        code, _, _ = await self.get(self.host, "/app.js", If_None_Match='"other"')
        self.assertEqual(code, 200)

    async def test_range(self):
        """
        One byte range is answered 206 with its bytes and Content-Range (and no
        Cache-Control, as Cloudflare leaves it off a Range request); a range past the end
        416; a HEAD gives the headers only, with the file's Content-Length.
        """
        data = SITE["/data.bin"]
        code, headers, body = await self.get(self.host, "/data.bin", Range="bytes=10-19")
        self.assertEqual((code, body, headers["content-range"]), (206, data[10:20], "bytes 10-19/1024"))
        self.assertNotIn("cache-control", headers)
        code, headers, body = await self.get(self.host, "/data.bin", Range="bytes=-4")
        self.assertEqual((code, body), (206, data[-4:]))
        code, headers, body = await self.get(self.host, "/data.bin", Range="bytes=1000-")
        self.assertEqual((code, body), (206, data[1000:]))
        code, headers, _ = await self.get(self.host, "/data.bin", Range="bytes=5000-")
        self.assertEqual((code, headers["content-range"]), (416, "bytes */1024"))
        code, headers, body = await self.get(self.host, "/data.bin", method="HEAD")
        self.assertEqual((code, body, headers["content-type"]), (200, b"", "application/octet-stream"))
        client = await raw_connection(self, self.fp.port)
        client.transport.write(b"HEAD /data.bin HTTP/1.1\r\nHost: site.func.local\r\n\r\n")
        self.assertIn(b"\r\nContent-Length: 1024\r\n", await client.wait_for(b"\r\n\r\n"))

    async def test_html_handling(self):
        """
        auto-trailing-slash: /about and /about/ serve about/index.html at /about/ (the first
        redirected, 307), /page.html and /about/index.html redirect to their canonical
        paths, / serves index.html.
        """
        self.assertEqual((await self.get(self.host, "/"))[2], b"<h1>home</h1>")
        code, headers, _ = await self.get(self.host, "/about")
        self.assertEqual((code, headers["location"]), (307, "/about/"))
        self.assertEqual((await self.get(self.host, "/about/"))[2], b"<h1>about</h1>")
        for path, location in [("/page.html", "/page"), ("/about/index.html", "/about/"), ("/index.html", "/")]:
            code, headers, _ = await self.get(self.host, path)
            self.assertEqual((code, headers["location"]), (307, location), path)
        self.assertEqual((await self.get(self.host, "/page"))[2], b"<h1>page</h1>")

    async def test_not_found_page(self):
        """
        404-page: the nearest 404.html up the path, with status 404.
        """
        self.assertEqual(await self.get_body("/blog/nope"), (404, b"<h1>no such post</h1>"))
        self.assertEqual(await self.get_body("/x/y/z"), (404, b"<h1>not here</h1>"))

    async def get_body(self, path, **headers):
        code, _, body = await self.get(self.host, path, **headers)
        return code, body

    async def test_redirects(self):
        """
        _redirects: a static 301, the default 302, a 200 rewrite that keeps the URL, a
        splat, an external 308, the query string carried.
        """
        cases = [
            ("/old", 301, "/page"),
            ("/temp?q=1", 302, "/page?q=1"),
            ("/docs/intro", 302, "/about/intro"),
            ("/away", 308, "https://example.com/x"),
        ]
        for path, status, location in cases:
            code, headers, _ = await self.get(self.host, path)
            self.assertEqual((code, headers.get("location")), (status, location), path)
        self.assertEqual(await self.get_body("/users/42"), (200, b"<h1>a user</h1>"))

    async def test_headers(self):
        """
        _headers: rules that match add their headers (a placeholder filled in), replace
        the default Cache-Control, and apply to 404s and redirects too.
        """
        _, headers, _ = await self.get(self.host, "/app.js")
        self.assertEqual((headers["x-frame-options"], headers["cache-control"]), ("DENY", "no-store"))
        self.assertEqual(headers["x-everywhere"], "yes")
        code, headers, _ = await self.get(self.host, "/blog/hello")
        self.assertEqual((code, headers["x-post"]), (404, "hello"))
        code, headers, _ = await self.get(self.host, "/old")
        self.assertEqual((code, headers["x-everywhere"]), (301, "yes"))

    async def test_methods(self):
        """
        A POST (or PUT) to an asset is 405, as on Cloudflare.
        """
        for method in ("POST", "PUT"):
            code, _, body = await self.get(self.host, "/app.js", method=method)
            self.assertEqual((code, body), (405, b""))


class WorkerTests(AssetsCase):
    async def test_spa_and_worker(self):
        """
        With a worker: assets first, the worker for what no asset answers; SPA fallback
        only for navigations (Sec-Fetch-Mode: navigate, the compatibility date being
        after 2025-04-01); the ASSETS binding serves files only (its unknown path is 404,
        never the worker).
        """
        await self.deploy("app", config={"not_found_handling": "single-page-application"}, main=WORKER, binding="ASSETS")
        host = "app.func.local"
        self.assertEqual((await self.get(host, "/app.js"))[2], b"console.log('app')")
        self.assertEqual((await self.get(host, "/api/x"))[2], b"worker: GET /api/x")
        code, _, body = await self.get(host, "/some/route", Sec_Fetch_Mode="navigate")
        self.assertEqual((code, body), (200, b"<h1>home</h1>"))
        self.assertEqual((await self.get(host, "/via-binding"))[2], b"binding: 200 console.log('app') 200")
        code, _, body = await self.get(host, "/app.js", method="POST")
        self.assertEqual((code, body), (405, b""))

    async def test_binding_without_fallback(self):
        """
        Through the binding an unknown path is 404 when no not_found_handling is set.
        """
        await self.deploy("bare", main=WORKER, binding="ASSETS")
        self.assertEqual((await self.get("bare.func.local", "/via-binding"))[2], b"binding: 200 console.log('app') 404")

    async def test_run_worker_first(self):
        """
        run_worker_first true sends everything to the worker; a list sends what it matches
        (and not what its negative rules match) to the worker, the rest to assets first.
        """
        await self.deploy("first", config={"run_worker_first": True}, main=WORKER, binding="ASSETS")
        self.assertEqual((await self.get("first.func.local", "/app.js"))[2], b"worker: GET /app.js")
        await self.deploy("some", config={"run_worker_first": ["/*.js", "!/style.*"]}, main=WORKER)
        self.assertEqual((await self.get("some.func.local", "/app.js"))[2], b"worker: GET /app.js")
        self.assertEqual((await self.get("some.func.local", "/style.css"))[2], b"body{}")
        self.assertEqual((await self.get("some.func.local", "/page"))[2], b"<h1>page</h1>")

    async def test_assets_only(self):
        """
        An assets-only project serves its files; with not_found_handling none an unknown
        path is 404 with no body; with single-page-application, index.html.
        """
        await self.deploy("only", files={"/index.html": b"only"})
        code, _, body = await self.get("only.func.local", "/")
        self.assertEqual((code, body), (200, b"only"))
        code, _, body = await self.get("only.func.local", "/missing")
        self.assertEqual((code, body), (404, b""))
        await self.deploy("spa", files={"/index.html": b"spa"}, config={"not_found_handling": "single-page-application"})
        self.assertEqual((await self.get("spa.func.local", "/deep/link"))[2], b"spa")


class VersionTests(AssetsCase):
    async def test_rollback_and_split(self):
        """
        Each version serves its own assets: a rollback brings the old files back, and a
        50/50 split serves each version's files to the requests it takes.
        """
        first = await self.deploy("ver", files={"/index.html": b"one", "/same.txt": b"same"})
        second = await self.deploy("ver", files={"/index.html": b"two", "/same.txt": b"same"}, method="POST")
        host = "ver.func.local"
        self.assertEqual((await self.get(host, "/"))[2], b"one")
        v1, v2 = first["deployment_id"], second["id"]
        code, _ = await self.fp.api(
            "POST", f"{ACCOUNT}/workers/scripts/ver/deployments",
            {"strategy": "percentage", "versions": [{"version_id": v1, "percentage": 50}, {"version_id": v2, "percentage": 50}]},
        )
        self.assertEqual(code, 200)
        for version, text in [(v1, b"one"), (v2, b"two")]:
            overrides = f'ver="{version}"'
            self.assertEqual((await self.get(host, "/", Cloudflare_Workers_Version_Overrides=overrides))[2], text)
        seen = {(await self.get(host, "/", Cloudflare_Workers_Version_Key=f"k{i}"))[2] for i in range(12)}
        self.assertEqual(seen, {b"one", b"two"})
        code, _ = await self.fp.api(
            "POST", f"{ACCOUNT}/workers/scripts/ver/deployments",
            {"strategy": "percentage", "versions": [{"version_id": v2, "percentage": 100}]},
        )
        self.assertEqual((await self.get(host, "/"))[2], b"two")
        _, shown = await self.fp.api("GET", "/api/functions/ver")
        oldest = shown["function"]["versions"][0]["name"]
        code, answer = await self.fp.api("POST", "/api/rollback/ver", {"version": oldest})
        self.assertEqual(code, 200, answer)
        self.assertEqual((await self.get(host, "/"))[2], b"one")
        self.assertEqual((await self.get(host, "/same.txt"))[2], b"same")
