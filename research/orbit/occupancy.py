"""How much of a resource is booked over time: a piecewise-constant level with a capacity.

One class serves every finite resource of the network: a link direction (capacity 1, each
transfer books 1), a pool of transmitters or antennas (capacity k), a relay's storage (capacity
in bytes, each transfer books its size). Bookings are half-open intervals ``[start, end)``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

__all__ = ["Occupancy"]


class Occupancy:
    """A step function ``level(t)`` (0 everywhere at first) and the ``capacity`` it may reach."""

    def __init__(self, capacity: float) -> None:
        if not capacity > 0:
            raise ValueError(f"capacity must be > 0, got {capacity!r}")
        self.capacity = float(capacity)
        # level on [times[i], times[i + 1]) is levels[i]; the first breakpoint is -inf.
        self.times: list[float] = [-math.inf]
        self.levels: list[float] = [0.0]

    def __len__(self) -> int:
        return len(self.times) - 1

    def level(self, t: float) -> float:
        """Booked amount at time ``t``."""
        return self.levels[bisect_right(self.times, t) - 1]

    def peak(self, start: float = -math.inf, end: float = math.inf) -> float:
        """Largest booked amount over ``[start, end)`` (the level at ``start`` if empty)."""
        i = max(bisect_right(self.times, start) - 1, 0)
        j = bisect_left(self.times, end, lo=i + 1)  # segments i .. j-1 begin before ``end``
        return max(self.levels[i:max(j, i + 1)])

    def blocked(self, start: float, end: float, amount: float = 1.0) -> list[tuple[float, float]]:
        """Sub-intervals of ``[start, end)`` where booking ``amount`` more would exceed capacity."""
        if len(self.times) == 1:  # nothing booked yet
            return []
        limit = self.capacity - amount + 1e-9
        out: list[tuple[float, float]] = []
        i = bisect_right(self.times, start) - 1
        n = len(self.times)
        while i < n and self.times[i] < end:
            if self.levels[i] > limit:
                a = max(self.times[i], start)
                b = min(self.times[i + 1], end) if i + 1 < n else end
                if out and out[-1][1] >= a:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
            i += 1
        return out

    def free_from(self, amount: float) -> float:
        """Earliest ``T`` after which ``amount`` more always fits (``inf`` if it never does)."""
        if amount > self.capacity + 1e-9:
            return math.inf
        limit = self.capacity - amount + 1e-9
        for i in range(len(self.levels) - 1, -1, -1):
            if self.levels[i] > limit:
                return self.times[i + 1] if i + 1 < len(self.times) else math.inf
        return -math.inf

    def _split(self, t: float) -> int:
        """Index of a breakpoint at ``t`` (inserted if needed)."""
        i = bisect_right(self.times, t) - 1
        if self.times[i] == t:
            return i
        self.times.insert(i + 1, t)
        self.levels.insert(i + 1, self.levels[i])
        return i + 1

    def add(self, start: float, end: float, amount: float = 1.0) -> None:
        """Book ``amount`` over ``[start, end)``; raise if that would exceed the capacity."""
        if not end > start:
            return
        if self.peak(start, end) + amount > self.capacity + 1e-9:
            raise ValueError(f"booking {amount} over [{start}, {end}) exceeds the capacity "
                             f"{self.capacity} (peak {self.peak(start, end)})")
        i = self._split(start)
        j = self._split(end)
        for k in range(i, j):
            self.levels[k] += amount
        # Coalesce equal neighbours: back-to-back bookings of a busy link become one segment,
        # which keeps every later query short when the network saturates.
        for k in (j, i):
            if 0 < k < len(self.levels) and self.levels[k] == self.levels[k - 1]:
                del self.times[k]
                del self.levels[k]
