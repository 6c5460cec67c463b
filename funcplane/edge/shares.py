"""
How much of the listener one client, or one version, holds at once, against its cap:
connections per client address (L{funcplane.edge.listener}), WebSockets per version and per
client address (L{funcplane.edge.tunnel.Tunnels}).
"""


class Shares:
    """
    How many of something each key holds, against a cap (0: none).

    @ivar held: the count of each key that holds any.
    """

    __slots__ = ("cap", "held")

    def __init__(self, cap):
        self.cap = cap
        self.held = {}

    def full(self, key):
        """
        Whether C{key} holds as many as the cap allows.
        """
        return bool(self.cap) and self.held.get(key, 0) >= self.cap

    def add(self, key):
        self.held[key] = self.held.get(key, 0) + 1

    def remove(self, key):
        count = self.held.get(key, 0) - 1
        if count > 0:
            self.held[key] = count
        else:
            self.held.pop(key, None)
