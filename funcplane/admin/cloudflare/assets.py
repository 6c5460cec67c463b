"""
Static assets in the Cloudflare v4 subset: the two calls of wrangler's upload (the session
with the manifest, then each bucket of files), and what a script upload's C{metadata.assets}
and C{assets} binding make of them (a L{funcplane.model.Assets}).

The bucket upload carries no API token, only the session's token (see
L{funcplane.assets.sessions}); the admin Site checks it before it reads the body, and
allows that one route a body large enough for the largest file, base64-encoded.
"""

import json
import re

from funcplane.admin.cloudflare.app import (
    ACCOUNT,
    SCRIPT,
    app,
    body,
    checked,
    envelope,
    json_body,
    ok,
    send,
)
from funcplane.admin.cloudflare.upload import multipart_parts
from funcplane.assets.content import content_type
from funcplane.errors import InvalidBinding, InvalidRequest
from funcplane.model import Assets
from funcplane.names import check_env_name

ASSETS_BINDING = "assets"
HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("single-page-application", "404-page", "none")
# Cloudflare's limits on run_worker_first (workers-shared's parseStaticRouting).
MAX_ROUTES_RULES = 100
MAX_ROUTES_RULE_LENGTH = 100
# The _redirects and _headers files, each (Cloudflare reads at most 2,100 redirect rules
# and 100 header rules of at most 2,000 characters a line).
MAX_RULES_FILE_BYTES = 1024 * 1024
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")


def has_worker(metadata):
    """
    Whether an upload's metadata names a worker (not only assets).
    """
    return "main_module" in metadata or "body_part" in metadata


def check_static_routing(rules):
    """
    Refuse C{run_worker_first} rules as Cloudflare does (workers-shared's
    C{parseStaticRouting}), with its messages.
    """
    if not rules:
        raise InvalidRequest("No `run_worker_first` rules were provided; must provide at least 1 rule.")
    if len(rules) > MAX_ROUTES_RULES:
        raise InvalidRequest(
            f"Too many `run_worker_first` rules were provided; {len(rules)} rules provided"
            f" exceeds max of {MAX_ROUTES_RULES}."
        )
    if not all(isinstance(rule, str) for rule in rules):
        raise InvalidRequest("`run_worker_first` must be true, false or a list of strings")
    invalid, negative, positive = [], [], []
    for rule in rules:
        if rule.startswith("!/"):
            negative.append(rule)
        elif rule.startswith("/"):
            positive.append(rule)
        elif rule.startswith("!"):
            invalid.append(f"'{rule}': negative rules must start with '!/'")
        else:
            invalid.append(f"'{rule}': rules must start with '/' or '!/'")
    if negative and not positive:
        raise InvalidRequest(
            "Only negative `run_worker_first` rules were provided; must provide at least 1"
            " non-negative rule"
        )
    for group in (positive, negative):
        seen = set()
        for rule in group:
            if len(rule) > MAX_ROUTES_RULE_LENGTH:
                invalid.append(
                    f"'{rule}': all rules must be less than {MAX_ROUTES_RULE_LENGTH} characters in length"
                )
            if rule in seen:
                invalid.append(f"'{rule}': rule is a duplicate; rules must be unique")
            if rule.endswith("*"):
                for other in group:
                    if other != rule and other.startswith(rule[:-1]):
                        invalid.append(f"'{other}': rule '{rule}' makes it redundant")
            seen.add(rule)
    if invalid:
        raise InvalidRequest("Invalid routes in `run_worker_first`:\n" + "\n".join(invalid))


def binding_name(metadata):
    """
    The name of the upload's C{assets} binding, or L{None}.
    """
    entries = metadata.get("bindings")
    names = [
        entry.get("name")
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and entry.get("type") == ASSETS_BINDING
    ]
    if len(names) > 1:
        raise InvalidBinding(f"only one assets binding is allowed; the upload has {len(names)}")
    if not names:
        return None
    check_env_name(names[0])
    return names[0]


def _choice(config, key, choices, default):
    value = config.get(key)
    if value is None:
        return default
    if value not in choices:
        raise InvalidRequest(f"assets {key} {str(value)[:60]!r} is not one of {', '.join(choices)}")
    return value


def parse_assets(metadata, script, sessions):
    """
    The L{Assets} a script upload's metadata names (C{assets: {jwt, config}} and an
    C{assets} binding), or L{None}.

    @param sessions: the L{funcplane.assets.sessions.UploadSessions} that issued the token.
    @raise InvalidRequest: the token stands for no finished upload of C{script}, or the
        config is not one Cloudflare accepts.
    """
    given = metadata.get("assets")
    binding = binding_name(metadata)
    if given is None:
        if binding is not None and metadata.get("keep_assets") is not True:
            raise InvalidBinding(f"binding {binding} is an assets binding, but the upload has no assets")
        return None
    if not isinstance(given, dict) or not isinstance(given.get("jwt"), str):
        raise InvalidRequest("'assets' must be an object with the upload's completion token as 'jwt'")
    config = given.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidRequest("'assets.config' must be an object")
    worker = has_worker(metadata)
    first = config.get("run_worker_first")
    if isinstance(first, list):
        check_static_routing(first)
    elif first is not None and not isinstance(first, bool):
        raise InvalidRequest("`run_worker_first` must be true, false or a list of strings")
    if not worker and first not in (None, False):
        raise InvalidRequest(
            "Cannot set run_worker_first without a Worker script. Please remove run_worker_first"
            " from your configuration file, or provide a Worker script (`main`)."
        )
    if not worker and binding is not None:
        raise InvalidBinding(
            "Cannot use assets with a binding in an assets-only Worker. Please remove the asset"
            " binding from your configuration file, or provide a Worker script (`main`)."
        )
    stored = {
        "html_handling": _choice(config, "html_handling", HTML_HANDLING, "auto-trailing-slash"),
        "not_found_handling": _choice(config, "not_found_handling", NOT_FOUND_HANDLING, "none"),
        "run_worker_first": first or False,
        "has_user_worker": worker,
    }
    for key in ("_redirects", "_headers"):
        text = config.get(key)
        if text is None:
            continue
        if not isinstance(text, str):
            raise InvalidRequest(f"assets {key} must be the file's text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_RULES_FILE_BYTES:
            raise InvalidRequest(f"the {key} file is over {MAX_RULES_FILE_BYTES} bytes")
        stored[key] = text
    if sessions is None:
        raise InvalidRequest("this funcplane takes no static assets")
    manifest = sessions.redeem(given["jwt"], script)
    return Assets(
        manifest=tuple((path, digest, size, content_type(path)) for path, digest, size in manifest),
        config=json.dumps(stored, sort_keys=True),
        binding=binding,
    )


class AssetRoutes:
    """
    C{.../scripts/<name>/assets-upload-session} and C{.../workers/assets/upload}.
    """

    @app.route(SCRIPT + "/assets-upload-session", methods=["POST"])
    @checked
    async def assets_upload_session(self, request, name):
        """
        Open an upload session for C{name}'s manifest: its token and the buckets of the
        hashes the store lacks.  The script need not exist yet (a first deploy).
        """
        if self._assets is None:
            raise InvalidRequest("this funcplane takes no static assets")
        return ok(request, await self._assets.open(name, json_body(request)))

    @app.route(ACCOUNT + "/workers/assets/upload", methods=["POST"])
    async def assets_upload(self, request, account):
        """
        One bucket of a session, authorised by the session's token alone.
        """
        if not _ACCOUNT_ID.match(account):
            raise InvalidRequest(f"account id {account[:80]!r} is not valid")
        if self._assets is None:
            raise InvalidRequest("this funcplane takes no static assets")
        session = self._assets.session_of(request)
        if request.args.get(b"base64", [b""])[0].lower() != b"true":
            raise InvalidRequest("funcplane takes asset files base64-encoded only: upload with ?base64=true")
        content_type_header = (request.getHeader(b"content-type") or b"").decode("latin-1")
        limits = self._assets.limits

        def parts_of(data):
            fields, files = multipart_parts(
                data, content_type_header, limits.upload_body_bytes, limits.bucket_files + 10
            )
            parts = [(name, value.encode("latin-1", "replace")) for name, value in fields.items()]
            return parts + [(name, content) for name, _, _, content in files]

        status, result = await self._assets.upload(session, parts_of, body(request))
        return send(request, envelope(result), status)
