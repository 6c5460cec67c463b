"""
Delivering an event to a child over its events socket (L{funcplane.runtime.events}): one
HTTP request on a fresh unix-socket connection, answered with the outcome as JSON.
Events are rare (a cron trigger fires at most once a minute per schedule), so nothing is
pooled.
"""

import json
import os

from twisted.internet.defer import CancelledError, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import ConnectError
from twisted.web.client import Agent, ResponseFailed, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from funcplane.runtime.events import events_socket_path

# How long a scheduled handler may run, as on Cloudflare (a cron trigger's wall-time limit).
SCHEDULED_TIMEOUT = 15 * 60.0


class NotDelivered(Exception):
    """
    The event did not reach the handler, or no answer came back: the message says why.
    """


def _cancelled(error):
    """
    Whether C{error} is the Agent's report of a request that was cancelled.
    """
    reasons = getattr(error, "reasons", None) if isinstance(error, ResponseFailed) else None
    return bool(reasons) and any(reason.check(CancelledError) for reason in reasons)


@implementer(IAgentEndpointFactory)
class _UnixSocket:
    def __init__(self, reactor, path):
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri):
        return UNIXClientEndpoint(self._reactor, self._path)


class EventsClient:
    """
    Sends events to children.

    @param reactor: an C{IReactorUNIX} and C{IReactorTime}.
    @param timeout: how long a run may take before funcplane stops waiting (and closes the
        connection, which cancels the request's context in workerd).
    """

    def __init__(self, reactor, timeout=SCHEDULED_TIMEOUT):
        self._reactor = reactor
        self._timeout = timeout

    async def scheduled(self, socket_path, cron, scheduled_time):
        """
        Run the C{scheduled} handler of the child whose HTTP socket is C{socket_path} for
        C{cron} at C{scheduled_time} (POSIX seconds); return the child's answer, a dict
        with an C{outcome}.

        @raise NotDelivered: the child has no events socket or could not be reached, it did
            not answer within the timeout, or its answer is not funcplane's.
        """
        path = events_socket_path(socket_path)
        agent = Agent.usingEndpointFactory(self._reactor, _UnixSocket(self._reactor, path))
        body = json.dumps({"cron": cron, "scheduledTime": int(round(scheduled_time * 1000))})
        d = agent.request(
            b"POST",
            b"http://funcplane.invalid/scheduled",
            Headers({b"content-type": [b"application/json"]}),
            _Body(body.encode("utf-8")),
        )
        d.addCallback(lambda response: readBody(response).addCallback(lambda data: (response.code, data)))
        timed_out = []
        timer = self._reactor.callLater(self._timeout, lambda: (timed_out.append(True), d.cancel()))
        try:
            code, data = await d
        except ConnectError as e:
            if not os.path.exists(path):
                raise NotDelivered(
                    "the version has no events socket: only ES-module and service-worker"
                    " versions take scheduled events (its main module is not an ES module)"
                )
            raise NotDelivered(f"funcplane could not reach the version's events socket ({e})")
        except Exception as e:
            if timed_out:
                raise NotDelivered(
                    f"the scheduled handler did not finish within {self._timeout:g} seconds"
                )
            if isinstance(e, CancelledError) or _cancelled(e):
                # Cancelled by the caller (funcplane stops): the Agent wraps it.
                raise CancelledError() from e
            raise NotDelivered(
                "the version closed the connection before it answered the scheduled event"
                f" (did it crash?): {e}"
            )
        finally:
            if timer.active():
                timer.cancel()
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if code != 200 or not isinstance(answer, dict) or "outcome" not in answer:
            raise NotDelivered(
                f"the version answered the scheduled event with status {code} and no outcome"
                " (did it crash?)"
            )
        return answer


@implementer(IBodyProducer)
class _Body:
    """
    A request body of known bytes (C{twisted.web.client.FileBodyProducer} would read it in
    a cooperator's slices; this is small).
    """

    def __init__(self, data):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass
