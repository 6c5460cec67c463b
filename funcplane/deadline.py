"""
Deadlines that move often and rarely expire.

Every proxied request sets and clears three of them (the connection's header or idle
deadline, the request's own, and the pooled upstream connection's idle expiry). A
C{callLater} and a C{cancel} for each costs the reactor heap work on every request, for
timers that almost never fire. A L{Deadline} instead keeps at most one C{DelayedCall}:
moving the deadline later or clearing it only records the new time, and the call, when it
fires early, schedules itself again for what remains.
"""


class Deadline:
    """
    Call a function once a moment passes, unless the moment is moved or cleared first.

    @ivar when: the time (on C{clock}) the function is due, or L{None}.
    """

    __slots__ = ("_clock", "_then", "when", "_call")

    def __init__(self, clock):
        self._clock = clock
        self._then = None
        self.when = None
        self._call = None

    def set(self, seconds, then):
        """
        Call C{then} in C{seconds}, in place of whatever was due.
        """
        clock = self._clock
        when = clock.seconds() + seconds
        self.when = when
        self._then = then
        call = self._call
        # The usual case: a call is pending, due no later than the new moment.
        if call is None or call.time > when:
            if call is not None:
                call.cancel()
            self._call = clock.callLater(seconds, self._fire)

    def clear(self):
        """
        Nothing is due. The pending call, if any, stays and finds nothing to do; use
        L{stop} when the owner is going away.
        """
        self.when = None
        self._then = None

    def stop(self):
        """
        Nothing is due, and no call is left pending on the clock.
        """
        self.clear()
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def _fire(self):
        self._call = None
        when = self.when
        if when is None:
            return
        remaining = when - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(remaining, self._fire)
            return
        then = self._then
        self.clear()
        then()
