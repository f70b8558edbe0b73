"""Retry policies: after a step raises, a policy says how long to wait before the next attempt, or to stop."""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

__all__ = ["ConstantDelayRetryPolicy", "ExponentialBackoffRetryPolicy", "RetryPolicy"]


@runtime_checkable
class RetryPolicy(Protocol):
    """Decides, after a failed attempt, the delay in seconds before retrying, or ``None`` to give up."""

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None: ...


class ConstantDelayRetryPolicy:
    """Retry up to ``maximum_attempts`` times, waiting ``delay`` seconds between attempts."""

    def __init__(self, maximum_attempts: int = 3, delay: float = 5.0) -> None:
        self.maximum_attempts = maximum_attempts
        self.delay = delay

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        return self.delay if attempts < self.maximum_attempts else None


class ExponentialBackoffRetryPolicy:
    """Retry with a delay doubling from ``initial_delay`` up to ``max_delay``, with optional jitter."""

    def __init__(
        self,
        maximum_attempts: int = 5,
        initial_delay: float = 1.0,
        multiplier: float = 2.0,
        max_delay: float = 60.0,
        jitter: bool = False,
    ) -> None:
        self.maximum_attempts = maximum_attempts
        self.initial_delay = initial_delay
        self.multiplier = multiplier
        self.max_delay = max_delay
        self.jitter = jitter

    def next(self, elapsed_time: float, attempts: int, error: Exception) -> float | None:
        if attempts >= self.maximum_attempts:
            return None
        delay = min(self.initial_delay * self.multiplier ** max(attempts - 1, 0), self.max_delay)
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay
