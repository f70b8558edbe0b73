"""Retry policies: after a step raises, a policy says how long to wait before the next attempt, or to give up.

``retry_policy(retry=..., wait=..., stop=...)`` builds one from three parts: a *condition* on the exception
(``retry_if_exception_type(...)``, ...), a *wait* strategy for the delay (``wait_fixed``, ``wait_exponential``,
...) and a *stop* condition (``stop_after_attempt``, ``stop_after_delay``, ...). Conditions and stops combine
with ``|`` and ``&``, waits with ``+``. The step actor running the step asks its policy after every failure and
sleeps there before running the step again; ``ctx.retry_info()`` tells the step which attempt it is in.
The parts live in ``rayflow._retry``; this module is where to import them from.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from rayflow._retry.conditions import (
    retry_all,
    retry_always,
    retry_any,
    retry_if_exception,
    retry_if_exception_cause_type,
    retry_if_exception_message,
    retry_if_exception_type,
    retry_if_not_exception_message,
    retry_if_not_exception_type,
    retry_never,
    retry_unless_exception_type,
)
from rayflow._retry.parts import RetryCondition, StopCondition, WaitStrategy, time_unit_type
from rayflow._retry.stops import (
    stop_after_attempt,
    stop_after_delay,
    stop_all,
    stop_any,
    stop_before_delay,
    stop_never,
)
from rayflow._retry.waits import (
    wait_chain,
    wait_combine,
    wait_exponential,
    wait_exponential_jitter,
    wait_fixed,
    wait_full_jitter,
    wait_incrementing,
    wait_none,
    wait_random,
    wait_random_exponential,
)

__all__ = [
    "ConstantDelayRetryPolicy",
    "ExponentialBackoffRetryPolicy",
    "RetryCondition",
    "RetryInfo",
    "RetryPolicy",
    "StopCondition",
    "WaitStrategy",
    "retry_all",
    "retry_always",
    "retry_any",
    "retry_if_exception",
    "retry_if_exception_cause_type",
    "retry_if_exception_message",
    "retry_if_exception_type",
    "retry_if_not_exception_message",
    "retry_if_not_exception_type",
    "retry_never",
    "retry_policy",
    "retry_unless_exception_type",
    "stop_after_attempt",
    "stop_after_delay",
    "stop_all",
    "stop_any",
    "stop_before_delay",
    "stop_never",
    "time_unit_type",
    "wait_chain",
    "wait_combine",
    "wait_exponential",
    "wait_exponential_jitter",
    "wait_fixed",
    "wait_full_jitter",
    "wait_incrementing",
    "wait_none",
    "wait_random",
    "wait_random_exponential",
]


@dataclass(frozen=True)
class RetryInfo:
    """Where the running step stands in its retries, as ``ctx.retry_info()`` returns it.

    ``retry_number`` is 0 on the first attempt, 1 on the first retry, and so on. ``elapsed_seconds`` counts from
    the start of the first attempt (0.0 on the first attempt). ``last_exception`` and ``last_failed_at`` (a UTC
    datetime) describe the failure just before this attempt, ``None`` on the first attempt.
    """

    retry_number: int
    elapsed_seconds: float
    last_exception: Exception | None
    last_failed_at: datetime | None


@runtime_checkable
class RetryPolicy(Protocol):
    """Anything with this ``next`` method can be a step's ``retry_policy``.

    After the step's ``attempts``-th failure (1 after the first), ``elapsed_time`` seconds after its first
    attempt began, with ``error`` the exception it raised, ``next`` returns the seconds to wait before running the
    step again, or ``None`` to give up (the run then fails with ``error``, unless a ``@catch_error`` handler
    recovers). ``seed``, when given, makes random delays repeatable.
    """

    def next(
        self, elapsed_time: float, attempts: int, error: Exception, *, seed: int | None = None
    ) -> float | None: ...


class _ComposedPolicy:
    """The policy ``retry_policy()`` builds: first the condition, then the wait, then the stop."""

    def __init__(self, retry: RetryCondition | None, wait: WaitStrategy, stop: StopCondition) -> None:
        self.retry = retry
        self.wait = wait
        self.stop = stop

    def next(self, elapsed_time: float, attempts: int, error: Exception, *, seed: int | None = None) -> float | None:
        if self.retry is not None and not self.retry(error):
            return None
        # Failures count from 1, retries from 0: the wait before the first retry is the strategy's number 0.
        delay = self.wait(max(attempts - 1, 0), seed=seed)
        if self.stop(attempts, elapsed_time, upcoming_sleep=delay):
            return None
        return delay

    def __repr__(self) -> str:
        return f"retry_policy(retry={self.retry!r}, wait={self.wait!r}, stop={self.stop!r})"


def retry_policy(
    retry: RetryCondition | None = None,
    wait: WaitStrategy | None = None,
    stop: StopCondition | None = None,
) -> RetryPolicy:
    """A policy retrying the errors ``retry`` accepts (``None``: every error), waiting ``wait`` between attempts
    (default ``wait_fixed(5)``), until ``stop`` says to give up (default ``stop_after_attempt(3)``: three runs
    of the step in all).

    A refused error fails the step at once; ``stop`` is asked with the delay ``wait`` chose, so
    ``stop_before_delay`` can give up before a sleep that would pass its limit.
    """
    wait = wait if wait is not None else wait_fixed(5)
    stop = stop if stop is not None else stop_after_attempt(3)
    return _ComposedPolicy(retry, wait, stop)


def ConstantDelayRetryPolicy(maximum_attempts: int = 3, delay: float = 5) -> RetryPolicy:
    """Deprecated (as in LlamaIndex Workflows 2.x): ``retry_policy(wait=wait_fixed(delay),
    stop=stop_after_attempt(maximum_attempts))``, which this returns."""
    warnings.warn(
        "ConstantDelayRetryPolicy is deprecated: use "
        "retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(maximum_attempts))",
        DeprecationWarning,
        stacklevel=2,
    )
    return retry_policy(wait=wait_fixed(delay), stop=stop_after_attempt(maximum_attempts))


def ExponentialBackoffRetryPolicy(
    maximum_attempts: int = 5,
    initial_delay: float = 1.0,
    multiplier: float = 2.0,
    max_delay: float = 60.0,
    jitter: bool = True,
) -> RetryPolicy:
    """Deprecated (as in LlamaIndex Workflows 2.x): ``retry_policy(wait=wait_exponential(...),
    stop=stop_after_attempt(maximum_attempts))``, which this returns.

    The first retry waits ``initial_delay``, each next one ``multiplier`` times more, at most ``max_delay``.
    With ``jitter`` (the default) each delay is drawn uniformly between 0 and that (``wait_random_exponential``).
    """
    warnings.warn(
        "ExponentialBackoffRetryPolicy is deprecated: use "
        "retry_policy(wait=wait_exponential(...), stop=stop_after_attempt(maximum_attempts)); "
        "wait_random_exponential(...) for jitter",
        DeprecationWarning,
        stacklevel=2,
    )
    shape = wait_random_exponential if jitter else wait_exponential
    wait = shape(multiplier=initial_delay, exp_base=multiplier, max=max_delay)
    return retry_policy(wait=wait, stop=stop_after_attempt(maximum_attempts))
