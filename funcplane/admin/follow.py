"""
A follower of a function's logs (C{GET .../logs?follow=true}): server-sent events written
to a client that may read slowly, or not at all.

It is the producer of its request, so the transport tells it when its buffer is full
(C{pauseProducing}); from then on events wait in the follower, up to
L{FOLLOW_BUFFER_BYTES}, and are written when the transport asks again.  A client that lets
more wait than that is dropped: its connection is aborted, which ends the follow, and the
drop is logged.  Without this, every line printed would pile up in the transport's buffer
for as long as the client kept the connection open.
"""

from collections import deque

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

# Bytes of events one follower may hold while its client does not read.
FOLLOW_BUFFER_BYTES = 1024 * 1024


@implementer(IPushProducer)
class LogFollower:
    """
    Writes events to C{request} as its transport can take them.

    @param request: the twisted.web request the events answer.
    @param what: what is followed (the function's name), for the log.
    @param limit: the bytes it holds before it drops the client.
    @ivar dropped: whether the client was dropped for reading too slowly.
    """

    log = Logger()

    def __init__(self, request, what, limit=FOLLOW_BUFFER_BYTES):
        self._request = request
        self._what = what
        self._limit = limit
        self._held = deque()
        self._held_bytes = 0
        self._paused = False
        self._stopped = False
        self.dropped = False

    def start(self):
        """
        Become the request's producer: the transport pauses and resumes it from now on.
        """
        self._request.registerProducer(self, True)

    def stop(self):
        """
        The follow ended: hold nothing more, and stop being the request's producer.
        """
        self.stopProducing()
        request = self._request
        if request.channel is not None and request.producer is self:
            request.unregisterProducer()

    def send(self, data):
        """
        Write C{data} now, or hold it while the client is not reading.
        """
        if self._stopped:
            return
        if not self._paused and not self._held:
            self._request.write(data)
            return
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes > self._limit:
            self._drop()

    def _drop(self):
        self._stopped = True
        self.dropped = True
        held, self._held_bytes = self._held_bytes, 0
        self._held.clear()
        self.log.warn(
            "dropped a follower of {function}'s logs at {client}: it did not read, and"
            " {held} bytes of events were waiting (the most one may hold is {limit})",
            function=self._what,
            client=_client(self._request),
            held=held,
            limit=self._limit,
        )
        transport = self._request.channel.transport if self._request.channel else None
        if transport is not None:
            transport.abortConnection()

    # IPushProducer

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        while self._held and not self._paused and not self._stopped:
            data = self._held.popleft()
            self._held_bytes -= len(data)
            # The write may pause this follower again, before the next one.
            self._request.write(data)

    def stopProducing(self):
        self._stopped = True
        self._held.clear()
        self._held_bytes = 0


def _client(request):
    address = request.getClientAddress()
    return getattr(address, "host", "unix")
