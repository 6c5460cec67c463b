"""
Tests for L{funcplane.admin.parse}: the seed's deploy body, validated into a
L{funcplane.model.Deployment}, and the limits it is held to.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import CodeTooLarge, InvalidEnvironment, InvalidName, InvalidRequest
from funcplane.model import MODULE, PLAIN_TEXT, SCRIPT, SERVICE_WORKER, Binding, Module
from funcplane.admin.parse import DEPLOY_FIELDS, MAX_JSON_DEPTH, Limits, load_json, parse_deployment, parse_json_object
from funcplane.admin.syntax import detect_format

SW = 'addEventListener("fetch", e => e.respondWith(new Response("v1")))'
ESM = "export default { fetch(request, env) { return new Response(env.APP_ENV) } }"


class FormatTests(SynchronousTestCase):
    """
    The format of a deploy's code, when the body does not say (L{funcplane.admin.syntax}).
    """

    def test_detection(self):
        """
        Scripts with import or export statements are modules; others are service workers,
        even when they mention the words elsewhere.
        """
        self.assertEqual(detect_format(ESM), MODULE)
        self.assertEqual(detect_format('import x from "y";\n' + SW), MODULE)
        self.assertEqual(detect_format("const a = 1;\n  export { a as default };"), MODULE)
        self.assertEqual(detect_format(SW), SERVICE_WORKER)
        self.assertEqual(detect_format(SW + " // we do not export anything"), SERVICE_WORKER)


class DeploymentTests(SynchronousTestCase):
    limits = Limits(max_code_bytes=1000, max_env_vars=2, max_env_value_bytes=10)

    def parse(self, **body):
        return parse_deployment("hello", dict({"runtime": "js", "code": SW}, **body), self.limits)

    def test_minimal(self):
        """
        runtime and code are enough; version and alias stay unset, the format is detected.
        """
        d = self.parse()
        self.assertEqual(
            (d.function, d.version, d.alias, d.format, d.bindings),
            ("hello", None, None, SERVICE_WORKER, ()),
        )
        self.assertEqual(d.modules, (Module("worker.js", SCRIPT, SW.encode()),))

    def test_full(self):
        """
        Every field is carried over; env becomes sorted pairs; an explicit format wins.
        """
        d = self.parse(version="v2", alias="test", env_vars={"B": "2", "A": "1"}, format="module")
        self.assertEqual(
            (d.version, d.alias, d.format, d.bindings),
            ("v2", "test", MODULE, (Binding("A", PLAIN_TEXT, "1"), Binding("B", PLAIN_TEXT, "2"))),
        )
        self.assertEqual(d.modules, (Module("worker.js", "esModule", SW.encode()),))

    def test_empty_alias_is_none(self):
        """
        The seed's clients send "alias": "" for no alias.
        """
        self.assertIsNone(self.parse(alias="").alias)

    def test_bad_runtime(self):
        """
        Only runtime "js" is accepted, and the message says so.
        """
        e = self.assertRaises(InvalidRequest, self.parse, runtime="python")
        self.assertIn('"js"', str(e))
        self.assertRaises(InvalidRequest, parse_deployment, "hello", {"code": SW}, self.limits)

    def test_missing_code(self):
        """
        code is required and must be a non-empty string.
        """
        for code in [None, "", 3]:
            e = self.assertRaises(InvalidRequest, self.parse, code=code)
            self.assertIn("'code'", str(e))

    def test_bad_names(self):
        """
        Function, version and alias names must be labels.
        """
        self.assertRaises(InvalidName, parse_deployment, "../x", {"runtime": "js", "code": SW}, self.limits)
        self.assertRaises(InvalidName, self.parse, version="a.b")
        self.assertRaises(InvalidName, self.parse, alias="-x")
        self.assertRaises(InvalidRequest, self.parse, version=5)

    def test_code_limit(self):
        """
        Code over the limit, counted in UTF-8 bytes, is CodeTooLarge; at the limit it passes.
        """
        self.parse(code="x" * 1000)
        e = self.assertRaises(CodeTooLarge, self.parse, code="é" * 501)
        self.assertIn("1002 bytes", str(e))

    def test_env_rules(self):
        """
        Too many variables, a bad name, a non-string value or a long value are refused.
        """
        self.assertRaises(InvalidEnvironment, self.parse, env_vars={"A": "1", "B": "2", "C": "3"})
        self.assertRaises(InvalidName, self.parse, env_vars={"A-B": "1"})
        self.assertRaises(InvalidEnvironment, self.parse, env_vars={"A": 1})
        self.assertRaises(InvalidEnvironment, self.parse, env_vars={"A": "x" * 11})
        self.assertRaises(InvalidEnvironment, self.parse, env_vars=["A"])
        self.assertRaises(InvalidRequest, self.parse, env_vars={"A": "\ud800"})

    def test_bad_format(self):
        """
        An explicit format must be one of the two known ones, and the message names them.
        """
        e = self.assertRaises(InvalidRequest, self.parse, format="commonjs")
        self.assertEqual(str(e), "'format' must be \"module\" or \"service-worker\", not 'commonjs'")

    def test_format_given_wins(self):
        """
        A format in the body wins over what the code looks like, and over what was
        detected beforehand; without one, what was detected is used.
        """
        self.assertEqual(self.parse(code=ESM, format="service-worker").format, SERVICE_WORKER)
        self.assertEqual(self.parse(code=SW, format="module").format, MODULE)
        body = {"runtime": "js", "code": SW}
        self.assertEqual(parse_deployment("hello", body, self.limits, detected=MODULE).format, MODULE)
        self.assertEqual(
            parse_deployment("hello", dict(body, format="service-worker"), self.limits, detected=MODULE).format,
            SERVICE_WORKER,
        )

    def test_unknown_field(self):
        """
        A field the deploy body does not have is refused, naming it, the field it is
        likely a misspelling of, and every field there is.
        """
        e = self.assertRaises(InvalidRequest, self.parse, envVars={"A": "1"})
        self.assertEqual(
            str(e),
            "unknown field 'envVars' in the deploy body (did you mean 'env_vars'?); the fields"
            f" are {', '.join(DEPLOY_FIELDS)}",
        )
        e = self.assertRaises(InvalidRequest, self.parse, secrets={})
        self.assertEqual(
            str(e),
            f"unknown field 'secrets' in the deploy body; the fields are {', '.join(DEPLOY_FIELDS)}",
        )

    def test_json_objects_only(self):
        """
        The body must be a JSON object.
        """
        self.assertEqual(parse_json_object(b'{"a": 1}'), {"a": 1})
        for body in [b"", b"{", b"[1]", b"\xff"]:
            self.assertRaises(InvalidRequest, parse_json_object, body)

    def test_deep_json(self):
        """
        JSON nested deeper than Python's parser can go, or than L{MAX_JSON_DEPTH}, is
        refused as a bad request that says so, not a RecursionError; at the limit it is
        read.
        """
        for depth in [100_000, MAX_JSON_DEPTH + 1]:
            body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
            e = self.assertRaises(InvalidRequest, parse_json_object, body)
            self.assertEqual(str(e), f"request body is JSON nested too deeply; at most {MAX_JSON_DEPTH} levels")
        deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
        self.assertEqual(json.dumps(load_json(deepest)), deepest)
        e = self.assertRaises(InvalidRequest, load_json, "[" * 100_000, "the 'metadata' part")
        self.assertIn("the 'metadata' part is JSON nested too deeply", str(e))
