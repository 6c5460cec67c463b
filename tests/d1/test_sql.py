"""
What one request's SQL does on a database (L{funcplane.d1.sql}): statements split as
SQLite reads them, values bound and shown as D1 does, one transaction per request, D1's
errors with SQLite's message, and the refusals and the deadline that keep a statement
inside its database and its time.
"""

import pysqlite3.dbapi2 as sqlite3
from twisted.trial.unittest import SynchronousTestCase

from funcplane.d1.sql import Limits, Runner, split, statements, value
from funcplane.errors import InvalidRequest, SQLError


def runner(test_case, **limits):
    connection = sqlite3.connect(":memory:", isolation_level=None)
    test_case.addCleanup(connection.close)
    return Runner(connection, Limits(**limits))


class SplitTests(SynchronousTestCase):
    """
    L{split} and L{statements}: a whole file into the statements SQLite sees.
    """

    def test_semicolons_in_strings_and_triggers(self):
        """
        A semicolon in a string or inside a trigger's body does not end a statement;
        comments alone and empty statements are left out.
        """
        text = (
            "CREATE TABLE t (a TEXT);\n-- a comment;\nINSERT INTO t VALUES ('a;b'), ('c');;\n"
            "CREATE TRIGGER g AFTER INSERT ON t BEGIN INSERT INTO t VALUES ('x'); END;\n"
            "/* the end; */\nSELECT 1"
        )
        self.assertEqual(
            split(text),
            [
                "CREATE TABLE t (a TEXT);",
                "-- a comment;\nINSERT INTO t VALUES ('a;b'), ('c');",
                "CREATE TRIGGER g AFTER INSERT ON t BEGIN INSERT INTO t VALUES ('x'); END;",
                "/* the end; */\nSELECT 1;",
            ],
        )

    def test_nothing(self):
        """
        SQL of nothing but comments is refused as D1 refuses it.
        """
        error = self.assertRaises(InvalidRequest, statements, "-- nothing\n/* here */;")
        self.assertEqual(str(error), "No SQL statements detected.")

    def test_params_need_one_statement(self):
        """
        params bind to the one statement of a query, and are refused with several.
        """
        self.assertEqual(statements("SELECT ?", [1])[0].params, (1,))
        self.assertRaises(InvalidRequest, statements, "SELECT ?; SELECT ?", [1])

    def test_values(self):
        """
        Booleans are 1 and 0; an array of byte numbers is a blob; objects are refused.
        """
        self.assertEqual([value(True), value(None), value("x"), value(1.5)], [1, None, "x", 1.5])
        self.assertEqual(value([0, 255]), b"\x00\xff")
        self.assertRaises(InvalidRequest, value, {"a": 1})
        self.assertRaises(InvalidRequest, value, 2**64)


class RunTests(SynchronousTestCase):
    """
    L{Runner.run}: results, meta, transactions and errors.
    """

    def test_results_and_meta(self):
        """
        Each statement has its result: rows as objects (blobs as byte arrays), with
        changes, last_row_id, rows read and written, and the size after the request.
        """
        run = runner(self).run
        answers = run(
            statements("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB); INSERT INTO t (b) VALUES (x'0102')")
            + statements("INSERT INTO t (b) VALUES (?)", [[3, 4]])
            + statements("SELECT a, b FROM t ORDER BY a")
        )
        self.assertEqual([a["success"] for a in answers], [True] * 4)
        self.assertEqual(answers[3]["results"], [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}])
        meta = [a["meta"] for a in answers]
        self.assertEqual([m["changes"] for m in meta], [0, 1, 1, 0])
        self.assertEqual([m["last_row_id"] for m in meta[1:3]], [1, 2])
        self.assertEqual([m["rows_written"] for m in meta], [0, 1, 1, 0])
        self.assertEqual(meta[3]["rows_read"], 2)
        self.assertEqual([m["changed_db"] for m in meta], [True, True, True, False])
        self.assertEqual({m["size_after"] for m in meta}, {8192})
        self.assertIsInstance(meta[0]["duration"], float)

    def test_raw_arrays(self):
        """
        The raw shape: columns, then each row as an array.
        """
        [answer] = runner(self).run(statements("SELECT 1 AS a, 'x' AS b"), rows_as="arrays")
        self.assertEqual(answer["results"], {"columns": ["a", "b"], "rows": [[1, "x"]]})

    def test_error_rolls_back(self):
        """
        A failing statement fails the whole request with SQLite's message and error name,
        and what the statements before it wrote is rolled back.
        """
        r = runner(self)
        r.run(statements("CREATE TABLE t (a)"))
        error = self.assertRaises(SQLError, r.run, statements("INSERT INTO t VALUES (1); SELECT * FROM nosuch"))
        self.assertEqual(str(error), "no such table: nosuch: SQLITE_ERROR")
        self.assertEqual(r.run(statements("SELECT count(*) AS n FROM t"))[0]["results"], [{"n": 0}])
        error = self.assertRaises(SQLError, r.run, statements("SELEC 1"))
        self.assertEqual(str(error), 'near "SELEC": syntax error: SQLITE_ERROR')

    def test_refused(self):
        """
        ATTACH, a transaction of the statement's own, and pragmas that change the file or
        its limits are refused (SQLITE_AUTH) with why; reading pragmas are allowed.
        """
        r = runner(self)
        cases = {
            "ATTACH 'other.db' AS other": "ATTACH is not allowed: a D1 database is one database: SQLITE_AUTH",
            "BEGIN": "BEGIN, COMMIT and ROLLBACK are not allowed: D1 runs each request in a"
            " transaction of its own: SQLITE_AUTH",
            "SAVEPOINT s": "SAVEPOINT and RELEASE are not allowed: D1 runs each request in a"
            " transaction of its own: SQLITE_AUTH",
            "PRAGMA max_page_count = 1000000000": "PRAGMA max_page_count is not allowed in D1: SQLITE_AUTH",
            "PRAGMA page_size = 512": "PRAGMA page_size is not allowed in D1: SQLITE_AUTH",
            "PRAGMA journal_mode = DELETE": "PRAGMA journal_mode is not allowed in D1: SQLITE_AUTH",
        }
        for sql, message in cases.items():
            self.assertEqual(str(self.assertRaises(SQLError, r.run, statements(sql))), message, sql)
        self.assertEqual(r.run(statements("PRAGMA page_size"))[0]["results"], [{"page_size": 4096}])
        self.assertEqual(r.run(statements("PRAGMA foreign_keys = ON"))[0]["success"], True)

    def test_runaway_interrupted(self):
        """
        A statement that runs past the deadline (an endless recursive CTE) is interrupted
        and its request fails, saying which limit it hit; the next request runs.
        """
        r = runner(self, statement_seconds=0.05)
        endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        error = self.assertRaises(SQLError, r.run, statements(endless))
        self.assertEqual(
            str(error),
            "the statement ran longer than 0.05 s (--d1-statement-timeout) and was interrupted:"
            " SQLITE_INTERRUPT",
        )
        self.assertEqual(r.run(statements("SELECT 2 AS n"))[0]["results"], [{"n": 2}])
