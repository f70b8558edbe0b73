"""Stop conditions: when a failing step gives up.

A stop condition is asked after each failure with the number of failures so far (1 after the first), the
seconds since the first attempt began, and the delay the wait strategy chose for the next retry. ``a | b`` stops
when either says so, ``a & b`` only when both do.
"""

from __future__ import annotations

from rayflow._retry.parts import Part, StopCondition, seconds, time_unit_type

__all__ = [
    "StopBase",
    "stop_after_attempt",
    "stop_after_delay",
    "stop_all",
    "stop_any",
    "stop_before_delay",
    "stop_never",
]


class StopBase(Part):
    """A stop condition that combines with ``|`` (any) and ``&`` (all)."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        raise NotImplementedError

    def __or__(self, other: StopCondition) -> stop_any:
        return stop_any(self, other)

    def __ror__(self, other: StopCondition) -> stop_any:
        return stop_any(other, self)

    def __and__(self, other: StopCondition) -> stop_all:
        return stop_all(self, other)

    def __rand__(self, other: StopCondition) -> stop_all:
        return stop_all(other, self)


class stop_after_attempt(StopBase):
    """Give up once the step has failed ``max_attempt_number`` times (so it runs at most that many times)."""

    def __init__(self, max_attempt_number: int) -> None:
        self.max_attempt_number = max_attempt_number

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return attempts >= self.max_attempt_number


class stop_after_delay(StopBase):
    """Give up when a failure comes ``max_delay`` or more after the first attempt began."""

    def __init__(self, max_delay: time_unit_type) -> None:
        self.max_delay = seconds(max_delay)

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return elapsed_time >= self.max_delay


class stop_before_delay(StopBase):
    """Give up when waiting for the next retry would reach ``max_delay`` after the first attempt began."""

    def __init__(self, max_delay: time_unit_type) -> None:
        self.max_delay = seconds(max_delay)

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return elapsed_time + upcoming_sleep >= self.max_delay


class stop_any(StopBase):
    """Give up when any of ``stops`` says so (none given: never)."""

    def __init__(self, *stops: StopCondition) -> None:
        self.stops = stops

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return any(stop(attempts, elapsed_time, upcoming_sleep=upcoming_sleep) for stop in self.stops)


class stop_all(StopBase):
    """Give up when every one of ``stops`` says so (none given: at once)."""

    def __init__(self, *stops: StopCondition) -> None:
        self.stops = stops

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return all(stop(attempts, elapsed_time, upcoming_sleep=upcoming_sleep) for stop in self.stops)


class stop_never(StopBase):
    """Never give up: retry until the step succeeds, the condition refuses, or the run times out."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return False
