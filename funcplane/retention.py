"""
Which versions a function can do without: what a version is used for (a version in use is
deleted only when forced), what serves the function's own host once a version that served
it is gone, and which old versions the retention limit (C{--keep-versions}) prunes.

These are rules on what was read from the store; the platform applies them
(L{funcplane.platform.Platform}) and the store writes the outcome only if what they were
decided on still holds.
"""

from funcplane.model import DeploymentInfo


def serving(routes):
    """
    The ids of the versions that serve a host of the function besides their own, given its
    L{funcplane.model.FunctionRoutes}: the latest, the members of a split, the targets of
    aliases.
    """
    found = {version_id for version_id, _ in routes.split}
    found.update(routes.aliases.values())
    if routes.latest is not None:
        found.add(routes.latest)
    return found


def uses(info, target, current):
    """
    What version C{target} (a L{funcplane.model.VersionInfo} of C{info}) is used for, as
    phrases for an error message; empty when nothing uses it.

    @param info: the function's L{funcplane.model.FunctionInfo}.
    @param current: its current L{DeploymentInfo}, or L{None}.
    """
    found = [f"alias {a} points to it" for a, name in info.aliases if name == target.name]
    if info.latest is not None and target.name == info.latest:
        found.insert(0, "it is the latest version")
    elif current is not None and target.id in dict(current.versions):
        found.insert(0, "it serves part of the function's traffic")
    return found


def successor(info, target, current, new_deployment_id, now):
    """
    What serves the function's own host once C{target}, which served it, is gone: the new
    latest version's id (or L{None}), and the deployment to record for it (or L{None} when
    the rest of C{current} serves on, or when nothing is left), made at C{now} with an id
    from C{new_deployment_id()}.
    """
    rest = [share for share in current.versions if share[0] != target.id] if current else []
    if rest:
        return max(rest, key=lambda share: share[1])[0], None
    remaining = [v for v in info.versions if v.id != target.id]
    if not remaining:
        return None, None
    newest = remaining[-1].id
    return newest, DeploymentInfo(
        id=new_deployment_id(),
        created_at=now,
        versions=((newest, 100),),
        metadata={"source": "api", "triggered_by": "delete"},
    )


def prunable(info, current, keep):
    """
    The L{funcplane.model.VersionInfo}s of C{info} beyond its newest C{keep} that nothing
    uses (see L{uses}), oldest first: what retention deletes.
    """
    if len(info.versions) <= keep:
        return []
    return [v for v in info.versions[: len(info.versions) - keep] if not uses(info, v, current)]
