"""
A lingering close: how funcplane ends a connection after refusing a request whose client
may still be sending it (a body over the limit, headers that broke a rule).

Closing a socket that has unread bytes makes the kernel answer with a reset, and the
client's TCP stack then throws away what it had received and not yet read: the refusal
itself. A client that sends its whole body before it reads (Python's C{http.client}) then
sees only a broken pipe. RFC 9112, section 9.6, says how to close instead: in stages.
funcplane half-closes the connection once the answer is written (the client reads the
answer, then the end), reads and discards what the client still sends, and closes when the
client does, or when a bounded time or number of bytes has passed.

Both listeners use it: the function listener's L{funcplane.edge.listener.ProxyChannel}, and
the admin API's refusal, which hands the connection over to a L{Lingering}.
"""

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol

from funcplane.edge.limits import ProxyLimits

LINGER_SECONDS = ProxyLimits().linger_seconds
LINGER_BYTES = ProxyLimits().linger_bytes


class Lingering(Protocol):
    """
    The protocol of a connection whose answer has been written and on which nothing more
    is read as a request: it half-closes the connection, discards what arrives, and
    closes it when the client does, after C{seconds}, or past C{max_bytes}.

    Over TLS the connection cannot be half-closed without ending the TLS session, so it is
    only read from (the answer says where it ends). A transport that can do neither is
    closed at once.

    @param clock: an C{IReactorTime}.
    @ivar discarded: how many bytes were read and dropped.
    """

    def __init__(self, clock, seconds=LINGER_SECONDS, max_bytes=LINGER_BYTES):
        self._clock = clock
        self._seconds = seconds
        self._max_bytes = max_bytes
        self._call = None
        self.discarded = 0

    def connectionMade(self):
        transport = self.transport
        if ISSLTransport.providedBy(transport):
            half_close = None
        else:
            half_close = getattr(transport, "loseWriteConnection", None)
            if half_close is None:
                transport.loseConnection()
                return
        if half_close is not None:
            half_close()
        # Whatever paused reading (backpressure towards a child) no longer holds.
        transport.resumeProducing()
        self._call = self._clock.callLater(self._seconds, self._end)

    def dataReceived(self, data):
        self.discarded += len(data)
        if self.discarded > self._max_bytes:
            self._end()

    def _end(self):
        self._stop()
        self.transport.abortConnection()

    def _stop(self):
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def connectionLost(self, reason):
        self._stop()
