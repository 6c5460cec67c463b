"""
A script's code as Cloudflare gives it back: C{GET .../content/v2} (a version's modules,
which C{wrangler versions secret put} re-uploads) and C{GET .../workers/scripts/NAME}
(Download Worker: the deployed script).  Neither is JSON: a module worker comes as the
C{multipart/form-data} body it was uploaded in, the main module first and named by a
C{CF-Entrypoint} header; Download Worker gives a service worker as its script's text.
"""

import uuid

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, checked
from funcplane.admin.cloudflare.upload import CONTENT_TYPES
from funcplane.admin.cloudflare.versions import find_version
from funcplane.model import SERVICE_WORKER


def current_version(info):
    """
    The version a script's own answers describe: the latest (the one deployed, or the
    largest share of a split), or, for a function that has only uploaded versions, the
    newest of them.

    @raise funcplane.errors.NoSuchVersion: the function has no version at all.
    """
    if info.latest is not None:
        return info.version_named(info.latest)
    if info.versions:
        return info.versions[-1]
    raise errors.NoSuchVersion(f"{info.name} has no version")


def multipart_modules(modules, boundary):
    """
    C{modules} as the parts of a C{multipart/form-data} body, each named by its module
    name and typed by its kind, as an upload gives them.
    """
    parts = []
    for module in modules:
        quoted = module.name.replace("\\", "\\\\").replace('"', "%22")
        parts += [
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{quoted}\";"
            f" filename=\"{quoted}\"\r\nContent-Type: {CONTENT_TYPES[module.kind]}\r\n\r\n".encode(),
            module.content,
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def _send_modules(request, modules):
    boundary = uuid.uuid4().hex
    request.setHeader(b"content-type", f"multipart/form-data; boundary={boundary}".encode())
    request.setHeader(b"cf-entrypoint", modules[0].name.encode("utf-8"))
    return multipart_modules(modules, boundary)


class ContentRoutes:
    """
    C{.../workers/scripts/<name>} (C{GET}) and C{.../content/v2}.
    """

    @app.route(SCRIPT + "/content/v2", methods=["GET"])
    @checked
    async def content(self, request, name):
        """
        A version's modules (C{?version=ID}, else the current one), as the multipart body
        they were uploaded in.
        """
        info = (await self._platform.function(name)).info
        wanted = request.args.get(b"version", [b""])[0].decode("ascii", "replace")
        version = find_version(info, wanted) if wanted else current_version(info)
        return _send_modules(request, await self._platform.modules(version.id))

    @app.route(SCRIPT, methods=["GET"])
    @checked
    async def download(self, request, name):
        """
        Download Worker: the current version's code, not JSON; a module worker's modules
        as a multipart body, a service worker's script as JavaScript.
        """
        info = (await self._platform.function(name)).info
        version = current_version(info)
        modules = await self._platform.modules(version.id)
        if version.format == SERVICE_WORKER:
            request.setHeader(b"content-type", b"application/javascript; charset=utf-8")
            return modules[0].content
        return _send_modules(request, modules)
