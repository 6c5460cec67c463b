"""
The house rules of funcplane's layout (docs/architecture.md), checked on the code itself:
which folders may import which, and how large a module may grow.

Each module is imported alone in a fresh interpreter, so that what it pulls in, however
indirectly, is what is judged; importing it here would only see what this process already
holds.
"""

import ast
import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import funcplane

ROOT = os.path.dirname(os.path.abspath(funcplane.__file__))
MAX_LINES = 500
# What a module of a folder must never load, however indirectly.
FORBIDDEN = {
    "edge": ("funcplane.admin", "klein", "werkzeug"),
    "observe": ("funcplane.admin", "funcplane.edge", "klein", "werkzeug"),
    "runtime": ("funcplane.admin", "funcplane.edge", "funcplane.observe", "klein", "werkzeug"),
    "store": ("funcplane.admin", "funcplane.edge", "funcplane.observe", "funcplane.runtime", "klein"),
    "assets": ("funcplane.admin", "funcplane.edge", "funcplane.observe", "funcplane.runtime", "klein", "werkzeug"),
    "schedule": ("funcplane.admin", "funcplane.edge", "klein", "werkzeug"),
    "d1": ("funcplane.admin", "funcplane.edge", "funcplane.observe", "funcplane.runtime", "klein", "werkzeug"),
}
_PROBE = (
    "import importlib, json, sys\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted(sys.modules)))\n"
)


def modules_in(folder):
    """
    The dotted names of the Python modules in C{funcplane/folder}, its subfolders included.
    """
    names = []
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
        package = os.path.relpath(directory, os.path.dirname(ROOT)).replace(os.sep, ".")
        for name in files:
            if name.endswith(".py"):
                module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
                names.append(module)
    return sorted(names)


def loaded_by(modules):
    """
    For each of C{modules}, every module a fresh interpreter holds after importing it.
    The interpreters run side by side.
    """
    probes = {
        module: subprocess.Popen(
            [sys.executable, "-c", _PROBE, module],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=os.path.dirname(ROOT),
        )
        for module in modules
    }
    found = {}
    for module, probe in probes.items():
        out, err = probe.communicate(timeout=60)
        if probe.returncode != 0:
            raise AssertionError(f"importing {module} failed:\n{err.decode()}")
        found[module] = json.loads(out)
    return found


def breaches(loaded, forbidden):
    """
    The forbidden modules (or packages) among C{loaded}.
    """
    return sorted(
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


class ImportRuleTests(SynchronousTestCase):
    """
    The folders say where a request travels: the edge serves function traffic without the
    admin side, and the runtime and the store know nothing of either.
    """

    def check(self, folder):
        modules = modules_in(folder)
        self.assertTrue(modules, f"funcplane/{folder} has no modules")
        found = {
            module: breaches(loaded, FORBIDDEN[folder])
            for module, loaded in loaded_by(modules).items()
        }
        self.assertEqual({m: b for m, b in found.items() if b}, {})

    def test_edge(self):
        """
        Nothing under funcplane/edge loads funcplane.admin, Klein or werkzeug.
        """
        self.check("edge")

    def test_observe(self):
        """
        funcplane/observe, which the edge reports to, loads neither the admin side nor the
        edge.
        """
        self.check("observe")

    def test_runtime(self):
        """
        funcplane/runtime loads neither the edge, the admin side nor the observers.
        """
        self.check("runtime")

    def test_store(self):
        """
        funcplane/store loads nothing of the edge, the admin side or the runtime.
        """
        self.check("store")

    def test_schedule(self):
        """
        funcplane/schedule, which the admin side drives, loads neither the admin side nor
        the edge, Klein or werkzeug.
        """
        self.check("schedule")

    def test_assets(self):
        """
        funcplane/assets, which the admin side and the runtime use, loads neither of them,
        nor the edge, the observers, Klein or werkzeug.
        """
        self.check("assets")

    def test_rules_bite(self):
        """
        The check sees an indirect import: the admin API's module loads Klein.
        """
        [loaded] = loaded_by(["funcplane.admin.api"]).values()
        self.assertEqual(breaches(loaded, ("klein",))[:1], ["klein"])


class SizeTests(SynchronousTestCase):
    """
    A module over 500 lines is two ideas living together.
    """

    def test_no_module_over_limit(self):
        """
        Every Python module under funcplane/ has at most 500 lines.
        """
        sizes = {}
        for directory, _, files in os.walk(ROOT):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as f:
                        sizes[os.path.relpath(path, ROOT)] = sum(1 for _ in f)
        self.assertIn("tap.py", sizes)
        self.assertEqual({p: n for p, n in sizes.items() if n > MAX_LINES}, {})


class TestDocstringTests(SynchronousTestCase):
    """
    Every test says what behaviour it pins down.
    """

    def test_every_test_has_a_docstring(self):
        """
        Every test method under tests/ has a docstring.
        """
        tests = os.path.dirname(os.path.abspath(__file__))
        missing = []
        for directory, _, files in os.walk(tests):
            for name in files:
                if name.startswith("test_") and name.endswith(".py"):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as f:
                        tree = ast.parse(f.read())
                    missing += [
                        f"{os.path.relpath(path, tests)}:{node.lineno} {node.name}"
                        for node in ast.walk(tree)
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and node.name.startswith("test_")
                        and not ast.get_docstring(node)
                    ]
        self.assertEqual(missing, [])
