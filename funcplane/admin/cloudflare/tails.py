"""
C{wrangler tail}: the routes that make and end a tail, and the WebSocket that streams
its events.  The tails themselves, and which events they receive, are
L{funcplane.observe.tails.Tails}; it talks to the socket here only through
L{funcplane.interfaces.ITailSocket}, so that L{funcplane.observe} never loads the admin
side.
"""

import re

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from funcplane import errors
from funcplane.admin.cloudflare.app import ACCOUNT, SCRIPT, app, body, checked, ok
from funcplane.admin.parse import parse_json_object
from funcplane.admin.websocket import (
    GOING_AWAY,
    WebSocketServer,
    handshake_problem,
    header_tokens,
    switching_protocols,
)
from funcplane.deadline import Deadline
from funcplane.interfaces import ITailSocket
from funcplane.observe.trace import TailFilter
from funcplane.timestamps import timestamp

PROTOCOL = b"trace-v1"
# A tail's WebSocket that sends nothing this long is closed (wrangler pings every 10 s):
# a client that vanished without closing does not hold a tail for hours.
SILENT_SECONDS = 60
_TAIL_ID = re.compile(r"[0-9a-f]{32}\Z")
_HOST = re.compile(rb"[A-Za-z0-9.:\[\]-]{1,255}\Z")


class TailRoutes:
    """
    C{.../tails}, and the WebSocket address C{/tails/<id>}.
    """

    @app.route(SCRIPT + "/tails", methods=["POST"])
    @checked
    async def create_tail(self, request, name):
        """
        Make a tail of the script, and answer with the WebSocket address that streams it.
        """
        await self._platform.function(name)
        given = body(request)
        tail_filter = TailFilter.parse(
            parse_json_object(given) if given.strip() else {}, request.getClientAddress().host
        )
        tail = self._tails.open(name, tail_filter)
        host = request.getHeader(b"host") or b""
        if not _HOST.match(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}".encode("ascii")
        scheme = "wss" if request.isSecure() else "ws"
        return ok(
            request,
            {
                "id": tail.id,
                "url": f"{scheme}://{host.decode('ascii')}/client/v4/tails/{tail.id}",
                "expires_at": timestamp(tail.expires_at),
            },
        )

    @app.route(SCRIPT + "/tails/<tail_id>", methods=["DELETE"])
    @checked
    async def delete_tail(self, request, name, tail_id):
        self._tails.delete(name, tail_id)
        return ok(request, None)

    @app.route("/tails/<tail_id>", methods=["GET"])
    def tail_socket(self, request, tail_id):
        """
        A tail's WebSocket.  The tail's id, which only its maker was told, is the credential:
        wrangler sends no token here.
        """
        problem = handshake_problem(request.method, request.requestHeaders)
        if problem is not None:
            raise errors.InvalidRequest(problem)
        if not _TAIL_ID.match(tail_id):
            raise errors.NoSuchTail(f"{tail_id[:40]!r} is not a tail id")
        return _TailUpgrade(self._tails, self._tails.waiting(tail_id), self._clock)

    @app.route(ACCOUNT + "/workers/tails/by-consumer/<name>", methods=["GET"])
    @checked
    async def tail_consumers(self, request, name):
        return ok(request, [])


class _TailUpgrade(Resource):
    """
    Opens a tail's WebSocket on the admin connection that asked for it.
    """

    isLeaf = True

    def __init__(self, tails, tail, clock):
        super().__init__()
        self._tails = tails
        self._tail = tail
        self._clock = clock

    def render_GET(self, request):
        offered = header_tokens(request.requestHeaders, b"sec-websocket-protocol")
        head = switching_protocols(
            request.getHeader(b"sec-websocket-key"), PROTOCOL if PROTOCOL in offered else None
        )
        socket = TailSocket(self._tails, self._tail, self._clock)
        request.channel.switch_protocol(head, socket)
        request.registerProducer(socket, True)
        return NOT_DONE_YET


@implementer(ITailSocket)
class TailSocket(WebSocketServer):
    """
    The WebSocket of one tail.  It sends events and reads nothing but wrangler's
    C{{"debug": ...}} and pings; while its client reads too slowly (the transport pauses it),
    events are dropped and counted, and the count is told when it catches up.  A client
    silent for L{SILENT_SECONDS} is taken for gone.

    @param tails: the L{funcplane.observe.tails.Tails} it tells when it connects and ends.
    @param tail: the L{funcplane.observe.tails.Tail} it streams.
    @param clock: an C{IReactorTime}.
    """

    def __init__(self, tails, tail, clock):
        super().__init__(max_message=4096)
        self._tails = tails
        self._tail = tail
        self._silence = Deadline(clock)
        self.paused = False

    def connectionMade(self):
        self._tails.attached(self._tail, self)
        self._silence.set(SILENT_SECONDS, self._silent)

    def dataReceived(self, data):
        self._silence.set(SILENT_SECONDS, self._silent)
        super().dataReceived(data)

    def _silent(self):
        self.close(GOING_AWAY, "nothing heard from the client in 60 s")
        self.transport.abortConnection()

    def message_received(self, text):
        # wrangler's only message, {"debug": false}, asks for nothing funcplane changes.
        pass

    def connectionLost(self, reason):
        self._silence.stop()
        self._tails.detached(self._tail)

    # IPushProducer, for the transport.

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.paused = True
