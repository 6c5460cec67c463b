"""
funcplane's objects in the shapes Cloudflare's v4 API gives them (scripts, versions,
deployments, bindings), for the v4 routes of L{funcplane.admin.cloudflare}.  Nothing here
reads a secret's value.
"""

import json

from funcplane.ids import cf_id
from funcplane.timestamps import timestamp
from funcplane.model import JSON, KV_NAMESPACE, SECRET_TEXT


def public_binding(binding):
    """
    A binding as Cloudflare lists one: a secret by name and type only.
    """
    if binding.type == SECRET_TEXT:
        return {"name": binding.name, "type": SECRET_TEXT}
    if binding.type == JSON:
        return {"name": binding.name, "type": JSON, "json": json.loads(binding.value)}
    if binding.type == KV_NAMESPACE:
        return {"name": binding.name, "type": KV_NAMESPACE, "namespace_id": binding.value}
    return {"name": binding.name, "type": binding.type, "text": binding.value}


def script_json(info):
    """
    A script (a function) as Cloudflare shows one.
    """
    latest = info.version_named(info.latest) if info.latest else None
    created = timestamp(info.created_at)
    modified = timestamp(info.versions[-1].created_at) if info.versions else created
    return {
        "id": info.name,
        "tag": latest.id if latest else "",
        "etag": latest.id if latest else "",
        "handlers": ["fetch"],
        "created_on": created,
        "modified_on": modified,
        "last_deployed_from": "wrangler",
        "has_modules": latest is not None and latest.format == "module",
        "usage_model": "standard",
    }


def script_list_json(info, version):
    """
    A script as List Workers shows one, with the settings of C{version} (the one its own
    host serves, or its newest when none does).  Without Durable Objects there is no
    C{migration_tag}; without routes, no C{routes}.
    """
    return dict(
        script_json(info),
        etag=version.id,
        has_modules=version.format == "module",
        has_assets=version.has_assets,
        compatibility_date=version.compatibility_date or "",
        compatibility_flags=list(version.compatibility_flags),
        logpush=False,
        tags=[],
        tail_consumers=[],
        named_handlers=[],
        observability={"enabled": False},
    )


def version_json(info, version):
    """
    Version C{version} of C{info} as Cloudflare shows one; secrets by name only.
    """
    number = info.versions.index(version) + 1
    metadata = version.metadata
    annotations = {"workers/triggered_by": metadata.get("triggered_by", "upload")}
    for key in ("message", "tag"):
        if key in metadata:
            annotations[f"workers/{key}"] = metadata[key]
    created = timestamp(version.created_at)
    return {
        "id": cf_id(version.id),
        "number": number,
        "name": version.name,
        "metadata": {
            "created_on": created,
            "modified_on": created,
            "source": metadata.get("source", "api"),
            "author_id": "funcplane",
            "author_email": "funcplane",
            "has_preview": False,
        },
        "annotations": annotations,
        "resources": {
            "script": {
                "etag": version.id,
                "handlers": ["fetch"],
                "last_deployed_from": metadata.get("source", "api"),
            },
            "script_runtime": {
                "compatibility_date": version.compatibility_date or "",
                "compatibility_flags": list(version.compatibility_flags),
                "usage_model": "standard",
                "limits": {},
            },
            "bindings": [public_binding(b) for b in version.bindings],
        },
    }


def deployment_json(deployment):
    """
    A L{funcplane.model.DeploymentInfo} as Cloudflare shows one.
    """
    metadata = deployment.metadata
    annotations = {}
    if "message" in metadata:
        annotations["workers/message"] = metadata["message"]
    if "triggered_by" in metadata:
        annotations["workers/triggered_by"] = metadata["triggered_by"]
    return {
        "id": cf_id(deployment.id),
        "created_on": timestamp(deployment.created_at),
        "source": metadata.get("source", "api"),
        "author_email": "funcplane",
        "strategy": "percentage",
        "annotations": annotations,
        "versions": [
            {"version_id": cf_id(version_id), "percentage": percentage}
            for version_id, percentage in deployment.versions
        ],
    }
