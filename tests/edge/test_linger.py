"""
The lingering close on its own: what it does to a transport that can be half-closed, one
over TLS, and one that can do neither.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides

from funcplane.edge.linger import LINGER_BYTES, LINGER_SECONDS, Lingering
from tests.edge.harness import HalfClosingTransport


class LingeringTests(SynchronousTestCase):
    """
    A L{Lingering} half-closes its connection, drops what arrives, and closes it at the
    bounds of time and size, or when the client does.
    """

    def setUp(self):
        self.clock = Clock()

    def linger(self, transport, **bounds):
        protocol = Lingering(self.clock, **bounds)
        protocol.makeConnection(transport)
        return protocol

    def test_half_closed(self):
        """
        The write side closes at once; reading goes on (and resumes if it was paused);
        what arrives is counted and dropped.
        """
        transport = HalfClosingTransport()
        transport.pauseProducing()
        protocol = self.linger(transport, seconds=2, max_bytes=10)
        self.assertTrue(transport.write_closed)
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(b"0123456789")
        self.assertEqual((protocol.discarded, transport.disconnecting), (10, False))
        protocol.dataReceived(b"x")
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_time_bound(self):
        """
        After the bound of time the connection is closed, however little arrived.
        """
        transport = HalfClosingTransport()
        self.linger(transport, seconds=2)
        self.clock.advance(1.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)

    def test_client_closes(self):
        """
        When the client closes first, no timer is left.
        """
        protocol = self.linger(HalfClosingTransport())
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tls(self):
        """
        Over TLS, where half-closing would end the TLS session, the connection is only
        read from until a bound.
        """
        transport = HalfClosingTransport()
        alsoProvides(transport, ISSLTransport)
        self.linger(transport, seconds=2)
        self.assertFalse(transport.write_closed)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnected)

    def test_cannot_linger(self):
        """
        A transport that can be neither half-closed nor is TLS is closed at once.
        """
        transport = StringTransport()
        self.linger(transport)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_defaults(self):
        """
        By default a connection lingers for 10 s and 100 MiB, as the options' defaults.
        """
        self.assertEqual((LINGER_SECONDS, LINGER_BYTES), (10.0, 100 * 1024 * 1024))
