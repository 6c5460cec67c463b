"""
Find the workerd binary.
"""

import os
import platform

ENVIRONMENT_VARIABLE = "FUNCPLANE_WORKERD"
_NPM_PACKAGES = {
    ("Linux", "x86_64"): "workerd-linux-64",
    ("Linux", "aarch64"): "workerd-linux-arm64",
    ("Darwin", "x86_64"): "workerd-darwin-64",
    ("Darwin", "arm64"): "workerd-darwin-arm64",
}


class WorkerdNotFound(Exception):
    """
    No usable workerd binary; the message says how to install one.
    """


def _candidates(start):
    package = _NPM_PACKAGES.get((platform.system(), platform.machine()))
    if package is None:
        return
    directory = os.path.abspath(start)
    while True:
        yield os.path.join(directory, "node_modules", "@cloudflare", package, "bin", "workerd")
        parent = os.path.dirname(directory)
        if parent == directory:
            return
        directory = parent


def find_workerd(explicit=None, environ=os.environ, start=None):
    """
    The absolute path of the workerd binary: C{explicit} (C{--workerd}) if given, else
    C{$FUNCPLANE_WORKERD}, else the one the npm package C{workerd} installed in a
    C{node_modules} directory in C{start} (the working directory) or above it, else the
    one beside this source tree.

    @raise WorkerdNotFound: with instructions, when none is usable.
    """
    chosen = explicit or environ.get(ENVIRONMENT_VARIABLE)
    if chosen:
        path = os.path.abspath(chosen)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise WorkerdNotFound(f"workerd binary {path} does not exist or is not executable")
        return path
    starts = [start or os.getcwd(), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for root in starts:
        for path in _candidates(root):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    raise WorkerdNotFound(
        "workerd was not found. Install it with 'npm install' in the funcplane checkout"
        " (package.json pins it), or pass --workerd PATH, or set FUNCPLANE_WORKERD."
    )
