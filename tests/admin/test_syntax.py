"""
Tests for L{funcplane.admin.syntax}: a script's format, read from its syntax rather than
from the starts of its lines, at once or a slice at a time.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from funcplane.admin.syntax import detect_format, detect_format_later
from funcplane.model import MODULE, SERVICE_WORKER

SW = 'addEventListener("fetch", e => e.respondWith(new Response("v1")))'

MODULES = [
    'export default { fetch() { return new Response("x") } }',
    'const a = 1; export default { fetch() { return new Response(a) } }',
    '"use strict";export default{fetch(){return new Response("x")}}',
    "/* a comment */ export default { fetch() {} }",
    "// a comment\nexport default { fetch() {} }",
    '#!/usr/bin/env node\nimport x from "y"',
    'import{a}from"b";' + SW,
    'import * as b from "./b.js"',
    'import "./side-effect.js"',
    "const here = import.meta.url",
    "const x = 1;\n  export { x as default };",
    'let t = `${`${"}"}`}`; export default {}',
    'let r = a.split(/[/"]/); export default {}',
    'x = (1) / 2 / "\'"; export default {}',
    'f(`a${ {b: 1} }c`); export default {}',
    "export\n  default {}",
]
SERVICE_WORKERS = [
    SW,
    SW + " // we do not export anything",
    'addEventListener("fetch", e => e.respondWith(new Response("export default {}")))',
    "// export default {}\n" + SW,
    "/*\nexport default { fetch() {} }\n*/\n" + SW,
    "const page = `\nexport default ${ {a: 1}.a } x\nimport y from 'z'`;\n" + SW,
    'const lib = await import("./lib.js");\n' + SW,
    "import\n// a comment\n('./lib.js')",
    'const r = /export"/; ' + SW,
    'const q = a / b; const s = "export"; x.export = 1; y.import = 2;\n' + SW,
    "const o = { import: 1, export: 2 }; class A { export() {} static import() {} }",
    "function f() { export default 1 }",
    'f(`a${ g(`x${ "}" }`) }`, "export")',
    "",
]


class DetectFormatTests(SynchronousTestCase):
    """
    L{detect_format} finds top-level import and export statements, and nothing else.
    """

    def test_modules(self):
        """
        Code with a top-level import or export statement (or import.meta) is a module,
        on one line or many, after a comment, a string or a shebang.
        """
        self.assertEqual({code: detect_format(code) for code in MODULES}, {code: MODULE for code in MODULES})

    def test_service_workers(self):
        """
        The words import and export in strings, comments, template literals, regular
        expressions, property names, blocks, or as a dynamic import() call do not make
        a module.
        """
        self.assertEqual(
            {code: detect_format(code) for code in SERVICE_WORKERS},
            {code: SERVICE_WORKER for code in SERVICE_WORKERS},
        )

    def test_unterminated(self):
        """
        Code that does not end what it opens (a string, a comment, a template) is still
        read to its end without error.
        """
        for code in ['"export', "/* export", "`export ${", "x = `${ {"]:
            self.assertEqual(detect_format(code), SERVICE_WORKER, code)
        self.assertEqual(detect_format("'abc\nexport default {}"), MODULE)


class Turns:
    """
    A clock whose calls the test runs one at a time, as the reactor's turns would.
    """

    def __init__(self):
        self.calls = []

    def callLater(self, delay, f):
        self.calls.append(f)
        return Clock().callLater(delay, lambda: None)


class LaterTests(SynchronousTestCase):
    """
    L{detect_format_later} scans a slice at a time, so a large script does not hold the
    reactor.
    """

    def test_small_at_once(self):
        """
        A script one slice covers is answered at once, nothing left on the clock.
        """
        clock = Clock()
        self.assertEqual(self.successResultOf(detect_format_later(MODULES[0], clock)), MODULE)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_sliced(self):
        """
        A long script takes a slice per turn of the reactor, one call waiting at a time,
        and comes to the answer L{detect_format} gives.
        """
        clock = Turns()
        code = ('f("x", `y`, a / b);\n' * 50) + "export default {}"
        d = detect_format_later(code, clock, steps_per_slice=10)
        turns = 0
        while not d.called:
            self.assertEqual(len(clock.calls), 1)
            clock.calls.pop()()
            turns += 1
        self.assertEqual(self.successResultOf(d), MODULE)
        self.assertEqual(turns, 20)

    def test_cancelled(self):
        """
        Cancelling the Deferred (the client went away) stops the scan.
        """
        clock = Clock()
        d = detect_format_later('f("export", `y`);\n' * 100, clock, steps_per_slice=10)
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])
