"""Shared by the runtime tests: a gauge actor that counts step invocations going on at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import ray


@ray.remote(num_cpus=0)
class Gauge:
    """Counts invocations going on at once; ``enter`` can hold each until ``hold`` of them are in."""

    def __init__(self, hold: int = 0) -> None:
        self.now = 0
        self.most = 0
        self.hold = hold
        self.full = asyncio.Event()

    async def enter(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        if self.hold:
            if self.now >= self.hold:
                self.full.set()
            await self.full.wait()

    async def leave(self) -> None:
        self.now -= 1

    async def peak(self) -> int:
        return self.most


@pytest.fixture
def gauge_factory() -> Iterator[Any]:
    made: list[Any] = []

    def make(hold: int = 0) -> Any:
        gauge = Gauge.remote(hold)  # type: ignore[attr-defined]
        made.append(gauge)
        return gauge

    yield make
    for gauge in made:
        ray.kill(gauge)
