"""
What an asset file is, as wrangler and Cloudflare see it: its content hash (which names it
in the store and is its ETag) and its Content-Type, both decided by its path's extension as
wrangler decides them.
"""

import json
import re
from functools import cache
from importlib.resources import files

import blake3

# 32 lower-case hex digits: the only text ever joined to the store's directory.
HASH = re.compile(r"[0-9a-f]{32}\Z")


def is_hash(text):
    """
    Whether C{text} is an asset hash: exactly 32 lower-case hex digits.
    """
    return isinstance(text, str) and HASH.match(text) is not None


def extension(path):
    """
    The extension wrangler hashes with a file: Node's C{path.extname} without its dot
    (C{""} for C{/Makefile}, C{/.env} or C{/a.}).
    """
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return ""
    return name[dot + 1 :]


def asset_hash(encoded, path):
    """
    The hash wrangler gives a file at C{path} (its C{hashFile}): BLAKE3 of the file's
    base64 text followed by its extension, the first 32 hex digits.

    @param encoded: the file's content, base64-encoded (bytes, as wrangler encodes it:
        standard alphabet, padded).
    """
    return hash_with_extension(encoded, extension(path))


def hash_with_extension(encoded, ext):
    """
    L{asset_hash} for a file whose extension is C{ext}.
    """
    return blake3.blake3(encoded + ext.encode("utf-8")).hexdigest()[:32]


@cache
def _types():
    return json.loads(files("funcplane.assets").joinpath("mime.json").read_text("utf-8"))["types"]


def content_type(path):
    """
    The Content-Type wrangler uploads a file at C{path} with (workers-shared's
    C{getContentType}: the C{mime} package, with C{; charset=utf-8} on text types), or
    L{None} when it has none (wrangler's C{application/null}: no Content-Type is sent).
    """
    last = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    dot = last.rfind(".")
    ext = last[dot + 1 :] if dot >= 0 else last
    # mime's getType: a name with no dot (or only a leading one) has no type.
    if not len(ext) < len(last) - 1:
        return None
    return _types().get(ext)
