"""
D1 databases through the Cloudflare v4 subset (L{funcplane.admin.cloudflare.d1}), called as
wrangler 4.86's C{d1} commands call them: create, list, get, delete, query, raw, and the
import flow of C{execute --file}.
"""

import hashlib
import os

from treq.testing import StubTreq
from twisted.internet.defer import maybeDeferred

from funcplane.admin.api import AdminAPI
from funcplane.admin.cloudflare import features
from funcplane.admin.cloudflare.api import CloudflareAPI
from funcplane.admin.parse import Limits
from funcplane.d1.imports import Imports
from funcplane.d1.registry import Databases
from tests.admin.cloudflare.harness import BASE, CloudflareCase

D1 = BASE + "/d1/database"


class D1Case(CloudflareCase):
    """
    The v4 API with a D1 registry on a temporary directory, whose threads run at once.
    """

    def setUp(self):
        super().setUp()
        path = self.mktemp()
        os.makedirs(path)
        self.d1 = Databases(self.store, os.path.join(path, "d1"), self.clock, in_thread=maybeDeferred)
        self.d1.startService()
        self.addCleanup(self.d1.stopService)
        limits = Limits(max_code_bytes=10_000)
        cloudflare = CloudflareAPI(
            self.platform, self.checker, limits, self.clock, self.tails,
            d1=self.d1, d1_imports=Imports(self.clock, self.d1),
        )
        api = AdminAPI(self.platform, self.checker, limits, "func.local", 8081, clock=self.clock, cloudflare=cloudflare)
        self.client = StubTreq(api.resource())

    def create(self, name="prod"):
        return self.ok("POST", D1, {"name": name})

    def query(self, uuid, sql, params=None, route="query"):
        body = {"sql": sql} if params is None else {"sql": sql, "params": params}
        return self.call("POST", f"{D1}/{uuid}/{route}", body)


class DatabaseRoutesTests(D1Case):
    """
    create, list, get and delete.
    """

    def test_create_and_get(self):
        """
        create answers the uuid and the name wrangler prints; get, by uuid or by name,
        adds the size and tables wrangler d1 info shows.
        """
        created = self.create()
        self.assertEqual(
            {k: created[k] for k in ("name", "version", "created_at", "file_size", "num_tables")},
            {"name": "prod", "version": "production", "created_at": "2027-01-15T08:00:00.000Z",
             "file_size": 4096, "num_tables": 0},
        )
        self.assertEqual(len(created["uuid"]), 36)
        self.query(created["uuid"], "CREATE TABLE t (a)")
        for key in (created["uuid"], "prod"):
            got = self.ok("GET", f"{D1}/{key}")
            self.assertEqual((got["uuid"], got["num_tables"], got["read_replication"]), (created["uuid"], 1, {"mode": "disabled"}))

    def test_errors(self):
        """
        A name taken is Cloudflare's 7502 (wrangler says so); no such database is 7404;
        a bad name is 10021.
        """
        self.create()
        self.assertCfError(self.call("POST", D1, {"name": "prod"}), 400, 7502, "A database with that name already exists")
        self.assertCfError(self.call("GET", D1 + "/nosuch"), 404, 7404, "The database nosuch could not be found")
        self.assertCfError(self.call("POST", D1, {"name": "a/b"}), 400, 10021, "is not valid")

    def test_list_pages(self):
        """
        The list has wrangler's pages (page, per_page) with result_info, and a name filter.
        """
        for i in range(3):
            self.create(f"db{i}")
            self.clock.advance(1)
        _, answer = self.call("GET", D1 + "?per_page=2&page=2")
        self.assertEqual([d["name"] for d in answer["result"]], ["db2"])
        self.assertEqual(answer["result_info"], {"page": 2, "per_page": 2, "count": 1, "total_count": 3})
        self.assertEqual([d["name"] for d in self.ok("GET", D1 + "?name=db1")], ["db1"])
        self.assertCfError(self.call("GET", D1 + "?per_page=0"), 400, 10021, "per_page")

    def test_delete(self):
        """
        delete answers null and the database is gone; a second delete is 7404.
        """
        uuid = self.create()["uuid"]
        self.assertIsNone(self.ok("DELETE", f"{D1}/{uuid}"))
        self.assertEqual(self.ok("GET", D1), [])
        self.assertCfError(self.call("DELETE", f"{D1}/{uuid}"), 404, 7404)

    def test_export_refused(self):
        """
        export and time travel, which funcplane lacks, are refused naming them.
        """
        uuid = self.create()["uuid"]
        self.assertCfError(self.call("POST", f"{D1}/{uuid}/export", {"output_format": "polling"}), 403, 10015,
                           features.D1.message)
        self.assertCfError(self.call("GET", f"{D1}/{uuid}/time_travel/bookmark"), 403, 10015, features.D1.message)


class QueryRoutesTests(D1Case):
    """
    /query and /raw.
    """

    def test_multi_statement(self):
        """
        wrangler's whole text: one result per statement, in order, with meta.
        """
        uuid = self.create()["uuid"]
        status, answer = self.query(uuid, "CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'); SELECT * FROM t")
        self.assertEqual(status, 200)
        results = answer["result"]
        self.assertEqual([r["results"] for r in results], [[], [], [{"a": 1, "b": "x"}]])
        self.assertEqual(results[1]["meta"]["changes"], 1)
        self.assertEqual(set(results[2]["meta"]) >= {"duration", "changes", "last_row_id", "rows_read",
                                                     "rows_written", "changed_db", "size_after"}, True)

    def test_params_and_raw(self):
        """
        params bind to the statement; /raw answers columns and rows.
        """
        uuid = self.create()["uuid"]
        self.query(uuid, "CREATE TABLE t (a, b)")
        self.query(uuid, "INSERT INTO t VALUES (?, ?)", [2, [0, 1]])
        _, answer = self.query(uuid, "SELECT * FROM t WHERE a = ?", [2], route="raw")
        self.assertEqual(answer["result"], [{"results": {"columns": ["a", "b"], "rows": [[2, [0, 1]]]},
                                             "success": True, "meta": answer["result"][0]["meta"]}])

    def test_sql_error(self):
        """
        A failing statement is 7500 with SQLite's message (which wrangler prints), and
        the request's earlier statements are rolled back.
        """
        uuid = self.create()["uuid"]
        self.query(uuid, "CREATE TABLE t (a)")
        self.assertCfError(self.query(uuid, "INSERT INTO t VALUES (1); SELEC 1"), 400, 7500,
                           'near "SELEC": syntax error: SQLITE_ERROR')
        self.assertEqual(self.query(uuid, "SELECT count(*) AS n FROM t")[1]["result"][0]["results"], [{"n": 0}])
        self.assertCfError(self.call("POST", f"{D1}/{uuid}/query", b"nope"), 400, 10021, "JSON")


class ImportRoutesTests(D1Case):
    """
    wrangler d1 execute --remote --file: init, upload, ingest, poll.
    """

    def test_import(self):
        """
        init gives an upload URL on funcplane's API; the upload answers the file's MD5 as
        its ETag; ingest runs the whole file and answers complete with num_queries and
        meta; poll answers the same; the URL is good for one upload only.
        """
        uuid = self.create()["uuid"]
        sql = b"CREATE TABLE t (a TEXT);\nINSERT INTO t VALUES ('a;b');\nINSERT INTO t VALUES ('c');\n"
        etag = hashlib.md5(sql).hexdigest()
        init = self.ok("POST", f"{D1}/{uuid}/import", {"action": "init", "etag": etag})
        self.assertEqual(init["upload_url"], f"http://127.0.0.1:8081/client/v4/d1/imports/{init['filename']}")
        response = self.successResultOf(self.client.request("PUT", init["upload_url"], data=sql))
        self.client.flush()
        self.assertEqual((response.code, response.headers.getRawHeaders(b"etag")), (200, [f'"{etag}"'.encode()]))
        done = self.ok("POST", f"{D1}/{uuid}/import", {"action": "ingest", "filename": init["filename"], "etag": etag})
        self.assertEqual((done["status"], done["result"]["num_queries"]), ("complete", 3))
        self.assertEqual(done["result"]["meta"]["rows_written"], 2)
        polled = self.ok("POST", f"{D1}/{uuid}/import", {"action": "poll", "current_bookmark": done["at_bookmark"]})
        self.assertEqual(polled, done)
        rows = self.query(uuid, "SELECT a FROM t")[1]["result"][0]["results"]
        self.assertEqual(rows, [{"a": "a;b"}, {"a": "c"}])
        again = self.successResultOf(self.client.request("PUT", init["upload_url"], data=sql))
        self.client.flush()
        self.assertEqual(again.code, 401)

    def test_failed_import(self):
        """
        A file with a failing statement applies nothing and answers status error with
        SQLite's message; an upload whose MD5 differs is refused.
        """
        uuid = self.create()["uuid"]
        sql = b"CREATE TABLE t (a);\nINSERT INTO nosuch VALUES (1);\n"
        etag = hashlib.md5(sql).hexdigest()
        init = self.ok("POST", f"{D1}/{uuid}/import", {"action": "init", "etag": etag})
        wrong = self.successResultOf(self.client.request("PUT", init["upload_url"], data=b"other"))
        self.client.flush()
        self.assertEqual(wrong.code, 400)
        self.successResultOf(self.client.request("PUT", init["upload_url"], data=sql))
        self.client.flush()
        done = self.ok("POST", f"{D1}/{uuid}/import", {"action": "ingest", "filename": init["filename"], "etag": etag})
        self.assertEqual((done["status"], done["errors"]), ("error", ["no such table: nosuch: SQLITE_ERROR"]))
        self.assertEqual(self.ok("GET", f"{D1}/{uuid}")["num_tables"], 0)
