"""
Backpressure towards a client: reading from its connection pauses while any reason holds
(too many requests read ahead, too many body bytes held, the child's connection full),
and resumes when none does.
"""

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class Gate:
    """
    Pauses reading from a transport while any reason to holds.
    """

    def __init__(self, transport):
        self._transport = transport
        self._reasons = set()

    def pause(self, reason):
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons.add(reason)

    def resume(self, reason):
        if reason in self._reasons:
            self._reasons.discard(reason)
            if not self._reasons:
                self._transport.resumeProducing()

    def set(self, reason, held):
        if held:
            self.pause(reason)
        else:
            self.resume(reason)


@implementer(IPushProducer)
class Hold:
    """
    Holds a L{Gate} for one reason while the transport it is registered with is full.
    """

    def __init__(self, gate, reason):
        self._gate = gate
        self._reason = reason

    def pauseProducing(self):
        self._gate.pause(self._reason)

    def resumeProducing(self):
        self._gate.resume(self._reason)

    def stopProducing(self):
        pass
