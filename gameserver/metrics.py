"""Self-measurement of the tick loop: durations, late and missed ticks.

Pure bookkeeping; the server feeds it the measured durations. Percentiles are
computed over a ring of the most recent ticks, so the figures describe the
server as it is now, not averaged since start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: How many recent tick durations the percentiles are computed over.
DEFAULT_WINDOW_TICKS = 4096


@dataclass(frozen=True, slots=True)
class TickStatistics:
    ticks: int
    late_ticks: int
    missed_ticks: int
    tick_p50_ms: float
    tick_p99_ms: float
    tick_max_ms: float
    #: CPU time spent inside ticks, in total and per tick on average.
    cpu_s: float
    tick_cpu_ms_mean: float


class TickMetrics:
    """Counts ticks and keeps a window of their durations."""

    def __init__(self, window: int = DEFAULT_WINDOW_TICKS) -> None:
        self._durations = np.zeros(window, dtype=np.float64)
        self.ticks = 0
        self.late_ticks = 0
        self.missed_ticks = 0
        self.max_s = 0.0
        self.cpu_s = 0.0

    def record(self, duration_s: float, cpu_s: float = 0.0) -> None:
        """One tick ran; it took ``duration_s`` of wall time and ``cpu_s`` of CPU."""
        self._durations[self.ticks % self._durations.size] = duration_s
        self.ticks += 1
        self.cpu_s += cpu_s
        self.max_s = max(self.max_s, duration_s)

    def statistics(self) -> TickStatistics:
        recent = self._durations[: min(self.ticks, self._durations.size)]
        if recent.size:
            p50, p99 = np.percentile(recent, [50, 99])
        else:
            p50 = p99 = 0.0
        return TickStatistics(
            ticks=self.ticks,
            late_ticks=self.late_ticks,
            missed_ticks=self.missed_ticks,
            tick_p50_ms=float(p50) * 1e3,
            tick_p99_ms=float(p99) * 1e3,
            tick_max_ms=self.max_s * 1e3,
            cpu_s=self.cpu_s,
            tick_cpu_ms_mean=self.cpu_s / self.ticks * 1e3 if self.ticks else 0.0,
        )
