"""
The storage channel: how a child's C{kvNamespace} bindings reach funcplane.

workerd is the client here.  A child whose version binds a namespace gets a unix socket of
its own, served by funcplane (L{StorageChannel}, with the Site it is given: see
L{funcplane.kv_binding}), made for that child when it is launched and closed when it ends.
The socket is C{<child id>.storage.sock} in the children's directory (0711, owned by
funcplane: a child can enter it, nobody can list it), owned by the child's user with mode
0600.  workerd connects to it as C{unix:/proc/self/cwd/<name>}: the child's working
directory is that directory, so the path resolves without searching the 0700 run
directory above it.

The version's config has one C{external} service per bound namespace, C{kv-<n>}, at that
address, each adding the header C{X-FP-Namespace: <namespace id>} to the requests it
sends (workerd removes any header of that name first).  The ids are funcplane's own, and
reach the config only as field values; service names are funcplane's (a number).  The
server answers only the namespaces of the version the socket was made for.
"""

import os

from twisted.internet.defer import maybeDeferred

from funcplane.model import KV_NAMESPACE

SUFFIX = ".storage.sock"
HEADER = "X-FP-Namespace"


def kv_namespaces(spec):
    """
    The ids of the namespaces C{spec}'s bindings name, each once, in order.
    """
    return tuple(sorted({b.value for b in spec.bindings if b.type == KV_NAMESPACE}))


def binds_storage(spec):
    return bool(kv_namespaces(spec))


def socket_name(child_id):
    return child_id + SUFFIX


def address(child_id):
    """
    The address the child's config names: its socket, through its working directory.
    """
    return f"unix:/proc/self/cwd/{socket_name(child_id)}"


def kv_service(spec, namespace_id):
    """
    The name of the service through which C{spec} reaches namespace C{namespace_id}.
    """
    return f"kv-{kv_namespaces(spec).index(namespace_id)}"


def service_count(spec):
    return len(kv_namespaces(spec))


def fill_services(services, spec, child_id):
    """
    Make C{services} (L{service_count} of them) the external services of C{spec}'s
    namespaces, on the socket of child C{child_id}.
    """
    for service, namespace_id in zip(services, kv_namespaces(spec)):
        service.name = kv_service(spec, namespace_id)
        external = service.init("external")
        external.address = address(child_id)
        header = external.init("http").init("injectRequestHeaders", 1)[0]
        header.name = HEADER
        header.value = namespace_id


class StorageChannel:
    """
    Makes and closes children's storage sockets.

    @param reactor: an C{IReactorUNIX}.
    @param site: C{site(namespace_ids)}, the Site a child binding those namespaces is
        served by.
    """

    def __init__(self, reactor, site):
        self._reactor = reactor
        self._site = site

    def listen(self, directory, child_id, spec, owner=None):
        """
        Listen on child C{child_id}'s socket in C{directory} for C{spec}'s namespaces, the
        socket owned by C{owner} (C{(uid, gid)}; L{None}: funcplane's user).  Returns the
        port; C{stopListening} closes and removes it.
        """
        path = os.path.join(directory, socket_name(child_id))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        port = self._reactor.listenUNIX(path, self._site(kv_namespaces(spec)), mode=0o600)
        if owner is not None:
            try:
                os.chown(path, *owner)
            except BaseException:
                port.stopListening()
                raise
        return _Listening(port, path)


class _Listening:
    """
    A child's storage socket: C{stopListening} closes it (Twisted removes its file).
    """

    def __init__(self, port, path):
        self._port = port
        self.path = path

    def stopListening(self):
        return maybeDeferred(self._port.stopListening)
