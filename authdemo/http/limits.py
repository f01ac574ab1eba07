"""Open websockets per client network, counted so that concurrent handshakes cannot
overshoot the cap (``AUTHDEMO_WS_PER_ADDRESS``, per worker).

A slot is *reserved* — checked and counted in one step with no ``await`` in between,
so no other handshake on this worker's event loop can act between the two — before the
handshake does anything slow, and given back exactly once: on refusal, on failure, or
when the connection ends.
"""

from __future__ import annotations

from collections import Counter


class SocketSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        """Reserved slots per client network (see ``domain.client_network``)."""

    def reserve(self, network: str) -> Slot | None:
        """A slot for one more websocket from ``network``, or None when it holds the cap."""
        if self.open[network] >= self.limit:
            return None
        self.open[network] += 1
        return Slot(self, network)

    def _give_back(self, network: str) -> None:
        self.open[network] -= 1
        if self.open[network] <= 0:
            del self.open[network]  # no empty entries pile up for addresses long gone


class Slot:
    """One reserved websocket; ``release()`` may be called any number of times."""

    __slots__ = ("_network", "_slots")

    def __init__(self, slots: SocketSlots, network: str) -> None:
        self._slots: SocketSlots | None = slots
        self._network = network

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back(self._network)

    def release_when_done(self, _task: object) -> None:
        """``release`` as a task's done callback: a bound method rather than a closure,
        about half the memory with the context the task keeps beside it, held for as long
        as the websocket is open."""
        self.release()
