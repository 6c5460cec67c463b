"""
Turn admin API request bodies into validated value types.  Every rule about what a user may
send lives here, so the core never re-checks it.
"""

import difflib
import json

import attrs

from funcplane.admin.syntax import detect_format
from funcplane.errors import CodeTooLarge, InvalidBinding, InvalidEnvironment, InvalidRequest
from funcplane.model import FORMATS, KV_NAMESPACE, Binding, Deployment, script_modules, text_bindings
from funcplane.names import check_env_name, check_label

# The fields each body of C{/api} may have.
DEPLOY_FIELDS = ("runtime", "code", "version", "alias", "format", "env_vars", "compatibility_date", "compatibility_flags",
                 "crons", "kv_namespaces")
ROLLBACK_FIELDS = ("version", "alias")
ALIAS_FIELDS = ("version",)
# JSON nested deeper than this is refused (Python's own parser would give up near 1,000).
MAX_JSON_DEPTH = 64


@attrs.frozen
class Limits:
    """
    What one deploy may carry.  The defaults follow Cloudflare's published Workers limits.
    """

    max_code_bytes: int = 10 * 1024 * 1024
    max_env_vars: int = 128
    max_env_value_bytes: int = 5 * 1024

    @property
    def max_body_bytes(self):
        """
        The largest admin request body read at all: room for the largest code, JSON-escaped.
        """
        return 2 * self.max_code_bytes + 1024 * 1024


def _utf8_length(what, text):
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} is not valid Unicode (it has a lone surrogate)")


def load_json(text, what="request body"):
    """
    Parse C{text} (str or bytes) as JSON nested at most L{MAX_JSON_DEPTH} deep, or raise
    L{InvalidRequest} saying what C{what} has wrong.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidRequest(f"{what} is JSON nested too deeply; at most {MAX_JSON_DEPTH} levels")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"{what} is not valid JSON: {e}")
    if _too_deep(value):
        raise InvalidRequest(f"{what} is JSON nested too deeply; at most {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value):
    """
    Whether C{value} has containers nested more than L{MAX_JSON_DEPTH} deep (looked at
    without recursion).
    """
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for container in level
            if isinstance(container, (dict, list))
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def parse_json_object(body):
    """
    Parse C{body} (bytes) as a JSON object, or raise L{InvalidRequest}.
    """
    value = load_json(body)
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    return value


def check_fields(body, fields, what):
    """
    Refuse a C{body} with a field not among C{fields}: a misspelt one (C{envVars}) would
    otherwise be silently ignored.
    """
    unknown = [key for key in body if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InvalidRequest(
            f"unknown field '{key[:80]}' in the {what} body{hint}; the fields are"
            f" {', '.join(fields)}"
        )


def _optional_string(body, key):
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{key}' must be a string")
    return value


def required_string(body, key):
    """
    The non-empty string C{body[key]}, or L{InvalidRequest} saying it is missing.
    """
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{key}' is required and must be a non-empty string")
    return value


def parse_env(value, limits):
    """
    Validate a JSON C{env_vars} object into C{(name, value)} pairs.
    """
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidEnvironment("'env_vars' must be an object of string values")
    if len(value) > limits.max_env_vars:
        raise InvalidEnvironment(
            f"too many environment variables: {len(value)}, the limit is {limits.max_env_vars}"
        )
    pairs = []
    for name, text in value.items():
        check_env_name(name)
        if not isinstance(text, str):
            raise InvalidEnvironment(f"environment variable {name} must be a string")
        size = _utf8_length(f"environment variable {name}", text)
        if size > limits.max_env_value_bytes:
            raise InvalidEnvironment(
                f"environment variable {name} is {size} bytes, the limit is"
                f" {limits.max_env_value_bytes}"
            )
        pairs.append((name, text))
    return tuple(pairs)


def parse_kv_namespaces(value, taken):
    """
    KV namespace bindings from a deploy body's C{kv_namespaces}, C{[{"binding", "id"}]}
    (as in wrangler.toml); C{taken} are the names already bound.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidBinding("'kv_namespaces' must be a list of {\"binding\", \"id\"} objects")
    found, names = [], set(taken)
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"binding", "id"}:
            raise InvalidBinding("each of 'kv_namespaces' must be an object with 'binding' and 'id'")
        name, namespace_id = entry.get("binding"), entry.get("id")
        check_env_name(name)
        if not isinstance(namespace_id, str) or not namespace_id:
            raise InvalidBinding(f"KV binding {name} needs a string 'id'")
        if name in names:
            raise InvalidBinding(f"binding {name} is given twice")
        names.add(name)
        found.append(Binding(name, KV_NAMESPACE, namespace_id))
    return tuple(found)


def parse_deployment(function, body, limits, detected=None):
    """
    Validate a deploy request for C{function} into a L{Deployment}.

    @param body: the parsed JSON object.
    @param detected: the code's format if it was detected already (by
        L{funcplane.admin.syntax.detect_format_later}); used when C{format} is not given.
    @raise InvalidRequest: (or a subclass) for anything malformed.
    @raise CodeTooLarge: when the code is over C{limits.max_code_bytes}.
    """
    check_label("function", function)
    check_fields(body, DEPLOY_FIELDS, "deploy")
    runtime = body.get("runtime")
    if runtime != "js":
        raise InvalidRequest(f"'runtime' must be \"js\" (got {runtime!r}); only JavaScript runs here")
    code = required_string(body, "code")
    size = _utf8_length("'code'", code)
    if size > limits.max_code_bytes:
        raise CodeTooLarge(f"code is {size} bytes, the limit is {limits.max_code_bytes}")
    version = _optional_string(body, "version")
    alias = _optional_string(body, "alias")
    if version is not None:
        check_label("version", version)
    if alias is not None:
        check_label("alias", alias)
    fmt = _optional_string(body, "format")
    if fmt is None:
        fmt = detected or detect_format(code)
    elif fmt not in FORMATS:
        raise InvalidRequest(f"'format' must be \"module\" or \"service-worker\", not {fmt[:40]!r}")
    date, flags = compatibility_fields(body)
    env = text_bindings(parse_env(body.get("env_vars"), limits))
    return Deployment(
        function=function,
        format=fmt,
        modules=script_modules(code, fmt),
        bindings=env + parse_kv_namespaces(body.get("kv_namespaces"), [b.name for b in env]),
        version=version,
        alias=alias,
        metadata={"source": "api"},
        compatibility_date=date,
        compatibility_flags=flags,
    )


def compatibility_fields(body):
    """
    The C{compatibility_date} (or L{None}) and C{compatibility_flags} of a deploy body or an
    upload's metadata, as given; the runtime checks what they ask for
    (L{funcplane.runtime.compatibility}).
    """
    date = body.get("compatibility_date")
    if date is not None and not isinstance(date, str):
        raise InvalidRequest("'compatibility_date' must be a date such as \"2026-11-01\"")
    flags = body.get("compatibility_flags")
    if flags is None:
        flags = []
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise InvalidRequest("'compatibility_flags' must be a list of flag names, such as [\"nodejs_compat\"]")
    return date or None, tuple(flags)
