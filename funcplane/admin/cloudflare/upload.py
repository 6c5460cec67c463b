"""
Worker uploads in the form the Cloudflare API takes them (and wrangler sends them): a
C{multipart/form-data} body with a C{metadata} part (JSON: the main module, bindings,
compatibility settings) and one part per module, named by the module's name, its kind
given by the part's Content-Type.  Every rule about what an upload may carry lives here;
the result is a L{funcplane.model.Deployment}.
"""

import io
import json
import posixpath

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

from funcplane.admin.cloudflare.features import binding_refusal, refuse_features
from funcplane.admin.parse import compatibility_fields, load_json
from funcplane.errors import CodeTooLarge, InvalidBinding, InvalidRequest
from funcplane.model import (
    JSON,
    KV_NAMESPACE,
    MODULE,
    PLAIN_TEXT,
    SCRIPT,
    SECRET_TEXT,
    SERVICE_WORKER,
    TEXT_KINDS,
    Binding,
    Deployment,
    Module,
)
from funcplane.names import check_env_name, check_label
from funcplane.runtime.assets import ASSETS_ONLY_MODULE, ASSETS_ONLY_SOURCE

# Part Content-Type -> workerd module kind.
MODULE_TYPES = {
    "application/javascript+module": "esModule",
    "text/javascript+module": "esModule",
    "application/javascript": "commonJsModule",
    "text/javascript": "commonJsModule",
    "text/plain": "text",
    "application/json": "json",
    "application/octet-stream": "data",
    "application/wasm": "wasm",
}
# File extension -> module kind, for a part sent without a Content-Type (as a hand-made
# upload may be: the examples of Cloudflare's docs name their modules worker.js, ...):
# wrangler's default module rules (Text: .txt .html .sql; Data: .bin; CompiledWasm: .wasm;
# ES modules .js .mjs, CommonJS .cjs), and .json for JSON modules.
EXTENSION_TYPES = {
    ".js": "esModule",
    ".mjs": "esModule",
    ".cjs": "commonJsModule",
    ".wasm": "wasm",
    ".bin": "data",
    ".txt": "text",
    ".html": "text",
    ".sql": "text",
    ".json": "json",
}
# Module kind -> the Content-Type a module of that kind is given back with (the first above).
CONTENT_TYPES = {kind: content_type for content_type, kind in reversed(MODULE_TYPES.items())}
CONTENT_TYPES[SCRIPT] = "application/javascript"
# Parts that are not modules and are dropped.
IGNORED_TYPES = {"application/source-map"}
JS_KINDS = ("esModule", "commonJsModule")
MAX_MODULES = 1000
MAX_MODULE_NAME = 512
# Binding types that are carried, and the Cloudflare ones funcplane has no equivalent for.
SUPPORTED_BINDINGS = (PLAIN_TEXT, JSON, SECRET_TEXT, KV_NAMESPACE)
INHERIT = "inherit"
ASSETS = "assets"


def multipart_parts(body, content_type, max_bytes, max_parts=MAX_MODULES + 10):
    """
    The parts of a C{multipart/form-data} C{body}: C{(fields, files)}, where C{fields} maps
    the names of parts without a filename to their text, and C{files} is a list of
    C{(name, filename, content type, bytes)} in the order sent.

    @raise InvalidRequest: the body is not multipart, or is malformed.
    """
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise InvalidRequest(
            "expected a multipart/form-data body with a boundary"
            f" (the Content-Type was {content_type or 'missing'!r})"
        )
    parser = FormDataParser(
        max_form_memory_size=max_bytes, max_content_length=max_bytes, max_form_parts=max_parts
    )
    try:
        _, form, files = parser.parse(io.BytesIO(body), mimetype, len(body), options)
    except RequestEntityTooLarge:
        raise CodeTooLarge(f"the upload is over {max_bytes} bytes or {max_parts} parts")
    except ValueError as e:
        raise InvalidRequest(f"the multipart body is malformed: {e}")
    fields = {name: value for name, value in form.items(multi=True)}
    found = [
        (name, part.filename, part.mimetype or "", part.read())
        for name, part in files.items(multi=True)
    ]
    return fields, found


def _metadata(fields, files):
    text = fields.get("metadata")
    if text is None:
        for name, _, _, content in files:
            if name == "metadata":
                text = content.decode("utf-8", "replace")
    if text is None:
        raise InvalidRequest("the upload has no 'metadata' part")
    metadata = load_json(text, "the 'metadata' part")
    if not isinstance(metadata, dict):
        raise InvalidRequest("the 'metadata' part must be a JSON object")
    return metadata


def _module(name, content_type, content):
    if not name or len(name) > MAX_MODULE_NAME or "\0" in name:
        raise InvalidRequest(f"module name {name[:80]!r} is empty, too long or has a NUL")
    if not content_type:
        return _typed_by_extension(name, content)
    kind = MODULE_TYPES.get(content_type.lower())
    if kind is None:
        raise InvalidRequest(
            f"module {name} has Content-Type {content_type or 'none'!r}, which funcplane does"
            f" not run; supported: {', '.join(sorted(MODULE_TYPES))}"
        )
    if kind in TEXT_KINDS:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"module {name} ({content_type}) is not valid UTF-8")
    return Module(name, kind, content)


def _typed_by_extension(name, content):
    """
    Module C{name}, sent without a Content-Type, typed by its extension
    (L{EXTENSION_TYPES}).
    """
    kind = EXTENSION_TYPES.get(posixpath.splitext(name)[1].lower())
    if kind is None:
        raise InvalidRequest(
            f"module {name} has no Content-Type, and funcplane cannot tell its type from its"
            f" name; give the part a Content-Type ({', '.join(sorted(MODULE_TYPES))}) or a"
            f" name ending in {', '.join(EXTENSION_TYPES)}"
        )
    return _module(name, CONTENT_TYPES[kind], content)


def _modules(metadata, files, limits):
    """
    The format and modules (the main one first) the upload's parts make.
    """
    main = metadata.get("main_module")
    body_part = metadata.get("body_part")
    entry = main if main is not None else body_part
    if entry is None and isinstance(metadata.get("assets"), dict):
        # Assets only (wrangler sends no module): a main module that is never reached.
        return MODULE, (Module(ASSETS_ONLY_MODULE, "esModule", ASSETS_ONLY_SOURCE),)
    if not isinstance(entry, str) or not entry:
        raise InvalidRequest("the metadata names no 'main_module' (or 'body_part')")
    modules = {}
    for name, filename, content_type, content in files:
        if name == "metadata" or content_type.lower() in IGNORED_TYPES:
            continue
        if name in modules:
            raise InvalidRequest(f"module {name} is uploaded twice")
        modules[name] = (content_type, content)
    if entry not in modules:
        raise InvalidRequest(f"the main module {entry} is not among the uploaded parts")
    size = sum(len(content) for _, content in modules.values())
    if size > limits.max_code_bytes:
        raise CodeTooLarge(f"the modules are {size} bytes, the limit is {limits.max_code_bytes}")
    if main is None:
        if len(modules) > 1:
            raise InvalidRequest(
                "a service-worker script cannot come with other modules (wasm or text"
                " bindings); use an ES module worker"
            )
        script = modules[entry][1]
        try:
            script.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"the script {entry} is not valid UTF-8")
        return SERVICE_WORKER, (Module(entry, SCRIPT, script),)
    first = _module(entry, *modules.pop(entry))
    if first.kind not in JS_KINDS:
        raise InvalidRequest(
            f"the main module {entry} must be JavaScript, and its part's Content-Type makes it"
            f" a {first.kind} module; send it as application/javascript+module"
        )
    rest = tuple(_module(name, content_type, content) for name, (content_type, content) in modules.items())
    return MODULE, (first,) + rest


def _binding_value(binding, name, kind):
    if kind == KV_NAMESPACE:
        namespace_id = binding.get("namespace_id")
        if not isinstance(namespace_id, str) or not namespace_id:
            raise InvalidBinding(f"kv_namespace binding {name} needs a string 'namespace_id'")
        return namespace_id
    if kind == JSON:
        if "json" not in binding:
            raise InvalidBinding(f"json binding {name} has no 'json' value")
        return json.dumps(binding["json"])
    text = binding.get("text")
    if not isinstance(text, str):
        raise InvalidBinding(f"{kind} binding {name} needs a string 'text'")
    return text


def parse_bindings(entries, limits, allow_keep=False):
    """
    C{(bindings, inherited names)} from a Cloudflare C{bindings} list.  With
    C{allow_keep}, an entry with only a name and a type (as C{secret bulk} sends) means
    "keep it as it is" and is returned among the inherited names.
    """
    if entries is None:
        return (), ()
    if not isinstance(entries, list):
        raise InvalidBinding("'bindings' must be a list")
    if len(entries) > limits.max_env_vars:
        raise InvalidBinding(f"too many bindings: {len(entries)}, the limit is {limits.max_env_vars}")
    found, inherit, seen = [], [], set()
    for binding in entries:
        if not isinstance(binding, dict):
            raise InvalidBinding("each binding must be an object with 'name' and 'type'")
        name, kind = binding.get("name"), binding.get("type")
        check_env_name(name)
        if name in seen:
            raise InvalidBinding(f"binding {name} is given twice")
        seen.add(name)
        if kind is None:
            raise InvalidBinding(
                f"binding {name} has no 'type'. The bindings funcplane provides:"
                f" {', '.join(SUPPORTED_BINDINGS)} (vars, secrets, KV), and {INHERIT} to keep"
                " the previous version's binding of that name."
            )
        if kind == ASSETS:
            # The assets binding: see funcplane.admin.cloudflare.assets.
            continue
        if kind == INHERIT or (allow_keep and set(binding) <= {"name", "type"}):
            inherit.append(name)
            continue
        if kind not in SUPPORTED_BINDINGS:
            raise InvalidBinding(binding_refusal(name, kind, SUPPORTED_BINDINGS))
        value = _binding_value(binding, name, kind)
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limits.max_env_value_bytes:
            raise InvalidBinding(
                f"binding {name} is {size} bytes, the limit is {limits.max_env_value_bytes}"
            )
        found.append(Binding(name, kind, value))
    return tuple(found), tuple(inherit)


def parse_upload(
    function, body, content_type, limits, deploy, source, triggered_by="upload", assets=None
):
    """
    Validate a worker upload for C{function} into a L{Deployment}.

    @param deploy: whether the new version takes all traffic once it starts.
    @param source: C{wrangler} or C{api}, recorded with the version.
    @param assets: C{assets(metadata)} is the version's L{funcplane.model.Assets} (or
        L{None}); without it, an upload with assets is refused.
    """
    check_label("script", function)
    fields, files = multipart_parts(body, content_type, limits.max_body_bytes)
    metadata = _metadata(fields, files)
    fmt, modules = _modules(metadata, files, limits)
    date, flags = compatibility_fields(metadata)
    bindings, inherit = parse_bindings(metadata.get("bindings"), limits)
    refuse_features(metadata)
    # Without keep_bindings (a plain wrangler deploy) secrets carry over, as on Cloudflare;
    # with it, exactly the types it lists do: wrangler versions secret delete leaves
    # secret_text out and names the secrets it keeps as inherit.
    keep = metadata.get("keep_bindings", [SECRET_TEXT])
    if not isinstance(keep, list):
        raise InvalidRequest("'keep_bindings' must be a list")
    keep_types = tuple(sorted({kind for kind in keep if kind in SUPPORTED_BINDINGS}))
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidRequest("'annotations' must be an object")
    recorded = {"source": source, "triggered_by": triggered_by}
    for key, name in (("workers/message", "message"), ("workers/tag", "tag")):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            recorded[name] = value[:1024]
    return Deployment(
        function=function,
        format=fmt,
        modules=modules,
        bindings=bindings,
        deploy=deploy,
        inherit=inherit,
        keep_types=keep_types,
        metadata=recorded,
        compatibility_date=date,
        compatibility_flags=flags,
        assets=_assets(metadata, assets),
        keep_assets=metadata.get("keep_assets") is True and metadata.get("assets") is None,
    )


def _assets(metadata, assets):
    if assets is not None:
        return assets(metadata)
    if metadata.get("assets") is not None:
        raise InvalidRequest("this API takes no static assets")
    return None

