"""Wait strategies: how long a step waits before its next attempt.

A strategy is called with the retry number, 0 before the first retry, and returns seconds. ``a + b`` (or
``sum([a, b])``) waits for both delays added. Random strategies draw from a shared generator, or from one seeded
with ``seed`` when it is given, so that a seed always gives the same delay.
"""

from __future__ import annotations

from typing import cast

from rayflow._retry.parts import Part, WaitStrategy, rng, seconds, time_unit_type

__all__ = [
    "WaitBase",
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


def _grown(start: float, base: float, attempts: int) -> float:
    """``start * base ** attempts``, infinite where the power overflows a float (a cap applies after)."""
    try:
        return start * base**attempts
    except OverflowError:
        return float("inf")


class WaitBase(Part):
    """A wait strategy that adds up with ``+`` and ``sum()``."""

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        raise NotImplementedError

    def __add__(self, other: WaitStrategy) -> wait_combine:
        return wait_combine(self, other)

    def __radd__(self, other: object) -> WaitStrategy:
        if other == 0:  # sum() starts from 0
            return self
        if callable(other):
            return wait_combine(cast(WaitStrategy, other), self)
        return NotImplemented


class wait_fixed(WaitBase):
    """Wait the same ``wait`` before every retry."""

    def __init__(self, wait: time_unit_type) -> None:
        self.wait = seconds(wait)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return self.wait


class wait_none(wait_fixed):
    """Retry at once."""

    def __init__(self) -> None:
        super().__init__(0.0)


class wait_exponential(WaitBase):
    """Wait ``multiplier * exp_base ** n`` before retry ``n`` (from 0), kept between ``min`` and ``max``."""

    def __init__(
        self,
        multiplier: float = 1.0,
        exp_base: float = 2.0,
        max: time_unit_type = 60.0,
        min: time_unit_type = 0.0,
    ) -> None:
        self.multiplier = float(multiplier)
        self.exp_base = float(exp_base)
        self.max = seconds(max)
        self.min = seconds(min)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return _clamp(_grown(self.multiplier, self.exp_base, attempts), self.min, self.max)


class wait_incrementing(WaitBase):
    """Wait ``start`` before the first retry, then ``increment`` more before each next one, up to ``max``."""

    def __init__(
        self,
        start: time_unit_type = 0.0,
        increment: time_unit_type = 100.0,
        max: time_unit_type = float("inf"),
    ) -> None:
        self.start = seconds(start)
        self.increment = seconds(increment)
        self.max = seconds(max)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return _clamp(self.start + self.increment * attempts, 0.0, self.max)


class wait_random(WaitBase):
    """Wait a delay drawn uniformly between ``min`` and ``max``."""

    def __init__(self, min: time_unit_type = 0.0, max: time_unit_type = 1.0) -> None:
        self.min = seconds(min)
        self.max = seconds(max)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return rng(seed).uniform(self.min, self.max)


class wait_exponential_jitter(WaitBase):
    """Wait ``initial * exp_base ** n`` plus a random ``0..jitter`` seconds, never more than ``max``."""

    def __init__(
        self,
        initial: time_unit_type = 1.0,
        exp_base: float = 2.0,
        max: time_unit_type = 60.0,
        jitter: time_unit_type = 1.0,
    ) -> None:
        self.initial = seconds(initial)
        self.exp_base = float(exp_base)
        self.max = seconds(max)
        self.jitter = seconds(jitter)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        base = _grown(self.initial, self.exp_base, attempts)
        return _clamp(base + rng(seed).uniform(0.0, self.jitter), 0.0, self.max)


class wait_random_exponential(WaitBase):
    """Wait a delay drawn uniformly between ``min`` and what ``wait_exponential`` with the same arguments
    gives ("full jitter": retries of many callers spread out instead of arriving together)."""

    def __init__(
        self,
        multiplier: float = 1.0,
        exp_base: float = 2.0,
        max: time_unit_type = 60.0,
        min: time_unit_type = 0.0,
    ) -> None:
        self.multiplier = float(multiplier)
        self.exp_base = float(exp_base)
        self.max = seconds(max)
        self.min = seconds(min)

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        upper = _clamp(_grown(self.multiplier, self.exp_base, attempts), self.min, self.max)
        return rng(seed).uniform(self.min, upper)


def wait_full_jitter(
    multiplier: float = 1.0,
    exp_base: float = 2.0,
    max: time_unit_type = 60.0,
    min: time_unit_type = 0.0,
) -> wait_random_exponential:
    """Another name for ``wait_random_exponential``."""
    return wait_random_exponential(multiplier=multiplier, exp_base=exp_base, max=max, min=min)


class wait_chain(WaitBase):
    """Use the first strategy before the first retry, the second before the second, ..., and the last one for
    every retry after. Each is still called with the overall retry number."""

    def __init__(self, *strategies: WaitStrategy) -> None:
        if not strategies:
            raise ValueError("wait_chain() needs at least one wait strategy")
        self.strategies = strategies

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        chosen = self.strategies[min(attempts, len(self.strategies) - 1)]
        return chosen(attempts, seed=seed)


class wait_combine(WaitBase):
    """Wait the sum of what every one of ``strategies`` gives."""

    def __init__(self, *strategies: WaitStrategy) -> None:
        self.strategies = strategies

    def __call__(self, attempts: int, *, seed: int | None = None) -> float:
        return sum((strategy(attempts, seed=seed) for strategy in self.strategies), 0.0)


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` kept within ``[max(low, 0), high]``; the lower bound wins when they cross."""
    return max(low, 0.0, min(value, high))
