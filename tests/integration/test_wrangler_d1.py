"""
D1 databases with the unmodified wrangler CLI: C{d1 create}, C{execute --remote} with
C{--command} and C{--file}, C{migrations create} and C{migrations apply --remote},
C{list}, C{info} and C{delete} on a real funcplane, checked by what the database then
holds; binding a database to a worker is refused, naming what is missing.
"""

import json
import os
import re

from tests.integration.harness import Funcplane
from tests.integration.test_wrangler import WranglerCase

DB = "fp-notes"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def config(uuid):
    return (
        'name = "notes-fp"\nmain = "src/index.js"\ncompatibility_date = "2024-09-23"\n'
        f'[[d1_databases]]\nbinding = "DB"\ndatabase_name = "{DB}"\ndatabase_id = "{uuid}"\n'
    )


class WranglerD1Tests(WranglerCase):
    timeout = 180

    async def rows(self, sql):
        output = await self.wrangler("d1", "execute", DB, "--remote", "--json", "--command", sql)
        return [item["results"] for item in json.loads(output)]

    async def test_d1(self):
        """
        A database made with wrangler takes statements, a file and migrations (each applied
        once, in order, recorded in d1_migrations) and answers them back; list and info
        show it; a SQL error prints SQLite's message; export and binding are refused with
        funcplane's messages; delete removes it and its file.
        """
        self.fp = await Funcplane(self).start()
        self.addCleanup(self.fp.remove)
        created = await self.wrangler("d1", "create", DB)
        [uuid] = set(UUID.findall(created))
        self.write_project({"wrangler.toml": config(uuid), "src/index.js": "export default { fetch() { return new Response('x') } }\n"})

        output = await self.wrangler(
            "d1", "execute", DB, "--remote", "--command",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('first; one')",
        )
        self.assertIn("Executed 2 commands", output)

        await self.wrangler("d1", "migrations", "create", DB, "tags")
        [first] = os.listdir(os.path.join(self.project, "migrations"))
        self.assertEqual(first, "0001_tags.sql")
        self.write_project({
            "migrations/0001_tags.sql": "CREATE TABLE tags (note INTEGER, tag TEXT);\nINSERT INTO tags VALUES (1, 'a;b');\n",
            "migrations/0002_more.sql": "ALTER TABLE notes ADD COLUMN stars INTEGER DEFAULT 0;\n"
            "CREATE TRIGGER starred AFTER INSERT ON tags BEGIN UPDATE notes SET stars = stars + 1; END;\n",
        })
        output = await self.wrangler("d1", "migrations", "apply", DB, "--remote")
        self.assertIn("0001_tags.sql", output)
        self.assertIn("0002_more.sql", output)
        self.assertIn("No migrations to apply", await self.wrangler("d1", "migrations", "apply", DB, "--remote"))
        [applied] = await self.rows("SELECT name FROM d1_migrations ORDER BY id")
        self.assertEqual(applied, [{"name": "0001_tags.sql"}, {"name": "0002_more.sql"}])

        with open(os.path.join(self.project, "seed.sql"), "w") as f:
            f.write("INSERT INTO notes (body) VALUES ('from a file');\nINSERT INTO tags VALUES (2, 'seed');\n")
        output = await self.wrangler("d1", "execute", DB, "--remote", "--file", "seed.sql")
        self.assertIn("Executed 2 queries", output)

        [rows] = await self.rows("SELECT n.body, n.stars, t.tag FROM notes n JOIN tags t ON t.note = n.id ORDER BY n.id")
        self.assertEqual(rows, [{"body": "first; one", "stars": 1, "tag": "a;b"}, {"body": "from a file", "stars": 1, "tag": "seed"}])

        output = await self.wrangler("d1", "execute", DB, "--remote", "--command", "SELECT * FROM nosuch", ok=False)
        self.assertIn("no such table: nosuch: SQLITE_ERROR", output)

        self.assertIn(uuid, await self.wrangler("d1", "list"))
        pretty = await self.wrangler("d1", "info", DB)
        self.assertIn(uuid, pretty)
        info = await self.wrangler("d1", "info", DB, "--json")
        self.assertEqual((json.loads(info)["uuid"], json.loads(info)["num_tables"]), (uuid, 3))

        output = await self.wrangler("d1", "export", DB, "--remote", "--output", "dump.sql", ok=False)
        self.assertIn("D1 export and time travel are not supported by funcplane", " ".join(output.split()))
        output = await self.wrangler("deploy", ok=False)
        self.assertIn("D1 bindings are not yet supported by funcplane", " ".join(output.split()))

        await self.wrangler("d1", "delete", DB, "-y")
        self.assertNotIn(uuid, await self.wrangler("d1", "list"))
        self.assertEqual(os.listdir(os.path.join(self.fp.settings.data_dir, "d1")), [])
