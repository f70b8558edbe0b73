"""What the three kinds of retry parts share: their call signatures (protocols), time units, a readable repr.

A retry condition looks at the exception; a wait strategy gives the delay before retry ``n`` (``n = 0`` for the
first retry); a stop condition looks at the failures so far, the seconds since the first attempt began, and the
delay about to be slept. Any callable with the right signature can stand in for a part.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Protocol

__all__ = ["Part", "RetryCondition", "StopCondition", "WaitStrategy", "rng", "seconds", "time_unit_type"]

#: A duration: seconds as a number, or a ``timedelta``.
time_unit_type = int | float | timedelta

_shared_random = random.Random()


def seconds(value: time_unit_type) -> float:
    """``value`` in seconds, as a float."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def rng(seed: int | None) -> random.Random:
    """A generator for one draw: seeded (the same draw every time) when ``seed`` is given, else a shared one."""
    return _shared_random if seed is None else random.Random(seed)


class RetryCondition(Protocol):
    """Says whether a step that raised ``error`` may run again."""

    def __call__(self, error: BaseException) -> bool: ...


class WaitStrategy(Protocol):
    """The seconds to wait before retry number ``attempts`` (0 for the first retry).

    ``seed`` makes a random strategy draw the same delay each time it is given the same seed."""

    def __call__(self, attempts: int, *, seed: int | None = None) -> float: ...


class StopCondition(Protocol):
    """Says whether to give up after ``attempts`` failures, ``elapsed_time`` seconds after the first attempt
    began, when the next retry would first wait ``upcoming_sleep`` seconds."""

    def __call__(self, attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool: ...


class Part:
    """A retry part that shows how it was built: ``wait_fixed(wait=0.5)``."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
