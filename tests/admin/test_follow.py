"""
Tests for L{funcplane.admin.follow}: a log follower whose client does not read is held
to a bounded buffer, then dropped; one that reads again gets what waited, in order.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.web.server import Site

from funcplane.admin.follow import FOLLOW_BUFFER_BYTES
from tests.admin.test_api import APICase
from tests.fakes import TOKEN


class FollowerTests(APICase):
    """
    C{GET .../logs?follow=true} on a connection whose transport fills up.
    """

    def setUp(self):
        super().setUp()
        self.deploy(version="v1")
        self.spec = self.launcher.launched[0].spec
        # A kept line, so that the response's head is written when the follow begins.
        self.logbook.add(self.spec, "log", "before")
        self.channel = Site(self.api.resource()).buildProtocol(None)
        self.channel.callLater = Clock().callLater
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 5000))
        self.channel.makeConnection(self.transport)
        self.channel.dataReceived(
            b"GET /api/functions/hello/logs?follow=true HTTP/1.1\r\nHost: admin\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
        )
        self.assertIn(b'"message": "before"', self.transport.value())
        self.transport.clear()

    def print(self, count, size=1000):
        for i in range(count):
            self.logbook.add(self.spec, "log", f"{i:06d} " + "x" * size)

    def test_paused_then_resumed(self):
        """
        While the transport is full (it paused the channel), new lines wait instead of
        piling onto it; when it asks again they are written, in order.
        """
        self.transport.producer.pauseProducing()
        self.print(10)
        self.assertEqual(self.transport.value(), b"")
        self.transport.producer.resumeProducing()
        written = self.transport.value()
        self.assertEqual(written.count(b"event: log"), 10)
        self.assertLess(written.index(b"000000 "), written.index(b"000009 "))
        self.assertFalse(self.transport.disconnecting)

    def test_dropped_when_not_reading(self):
        """
        A client that does not read is dropped once more than L{FOLLOW_BUFFER_BYTES}
        wait: its connection is aborted, the drop is logged with the function, the
        client's address and the bytes that waited, and the follow ends (the log book
        forgets it, nothing is left on the clock).  Nothing more reached the transport
        meanwhile.
        """
        self.transport.producer.pauseProducing()
        lines = FOLLOW_BUFFER_BYTES // 1000 + 10
        with capturedLogs() as events:
            self.print(lines)
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnected)
        [event] = [e for e in events if "dropped a follower" in e.get("log_format", "")]
        self.assertEqual((event["function"], event["client"], event["limit"]), ("hello", "192.0.2.9", FOLLOW_BUFFER_BYTES))
        self.assertGreater(event["held"], FOLLOW_BUFFER_BYTES)
        self.assertLess(event["held"], FOLLOW_BUFFER_BYTES + 2000)
        self.print(100)
        self.assertEqual(self.logbook.followers(), 1)
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.logbook.followers(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keep_alive_waits_too(self):
        """
        The keep-alive comments go the same way: held while the client does not read.
        """
        self.transport.producer.pauseProducing()
        self.clock.advance(15)
        self.assertEqual(self.transport.value(), b"")
        self.transport.producer.resumeProducing()
        self.assertEqual(self.transport.value(), b"e\r\n: keep-alive\n\n\r\n")
