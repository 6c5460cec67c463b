"""
Deploying static assets to a real funcplane the way wrangler does (the upload session, the
bucket uploads with the session's token, the script upload naming the completion token),
for the integration tests.
"""

import base64
import json
import uuid

from funcplane.assets.content import asset_hash
from tests.integration.harness import AUTH

ACCOUNT = "/client/v4/accounts/0123456789abcdef0123456789abcdef"


def manifest_of(files):
    """
    wrangler's manifest of C{files} (path -> bytes).
    """
    return {
        path: {"hash": asset_hash(base64.b64encode(content), path), "size": len(content)}
        for path, content in files.items()
    }


def multipart(parts):
    """
    A multipart/form-data body of C{parts}: C{(name, filename or None, content type or
    None, bytes)}; returns C{(content type, body)}.
    """
    boundary = uuid.uuid4().hex
    chunks = []
    for name, filename, kind, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if kind:
            head += f"Content-Type: {kind}\r\n"
        chunks += [head.encode() + b"\r\n", content, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


async def upload_assets(fp, name, files):
    """
    Upload C{files} for script C{name}; return C{(completion token, hashes uploaded)}.
    """
    manifest = manifest_of(files)
    code, answer = await fp.api(
        "POST", f"{ACCOUNT}/workers/scripts/{name}/assets-upload-session", {"manifest": manifest}
    )
    assert code == 200, answer
    session = answer["result"]
    by_hash = {entry["hash"]: path for path, entry in manifest.items()}
    token, sent = session["jwt"], []
    for bucket in session["buckets"]:
        parts = [(h, h, "application/null", base64.b64encode(files[by_hash[h]])) for h in bucket]
        kind, body = multipart(parts)
        code, content = await fp.request(
            "POST",
            f"{ACCOUNT}/workers/assets/upload?base64=true",
            body,
            headers={"Authorization": f"Bearer {session['jwt']}", "Content-Type": kind},
        )
        result = json.loads(content)
        assert code in (201, 202), result
        token = result["result"].get("jwt") or token
        sent += bucket
    return token, sent


async def deploy_assets(fp, name, files, config=None, main=None, binding=None, method="PUT", **metadata):
    """
    Deploy C{name} with C{files} as its assets (C{config}: wrangler's assets config) and
    C{main} (ES module source) as its worker, or none; return C{(status, result)}.
    """
    token, _ = await upload_assets(fp, name, files)
    meta = dict(
        {"assets": {"jwt": token, "config": config or {}}, "compatibility_date": "2025-06-01"}, **metadata
    )
    parts = []
    if main is not None:
        meta["main_module"] = "index.js"
        meta["bindings"] = [{"type": "assets", "name": binding}] if binding else []
        parts.append(("index.js", "index.js", "application/javascript+module", main.encode()))
    kind, body = multipart([("metadata", None, None, json.dumps(meta).encode())] + parts)
    path = f"{ACCOUNT}/workers/scripts/{name}" + ("/versions" if method == "POST" else "")
    code, content = await fp.request(method, path, body, headers=dict(AUTH, **{"Content-Type": kind}))
    return code, json.loads(content)
