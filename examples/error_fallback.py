"""Errors: turn a failure into an event of its own, or let a step raise and catch its own exception type.

``search`` calls a flaky backend; when it fails, the step returns a ``Degraded`` event instead of raising, and
the run ends on the cached path. ``FailingWorkflow`` shows the other way: the step raises, and ``await`` on the
run raises that same exception (a ValueError stays a ValueError).

    python examples/error_fallback.py
"""

from __future__ import annotations

import asyncio

from rayflow import Event, StartEvent, StopEvent, Workflow, step


class Found(Event):
    data: str


class Degraded(Event):
    reason: str


async def flaky_search(query: str) -> str:
    """A search backend that is down whenever the query mentions "outage"."""
    if "outage" in query:
        raise ConnectionError(f"search backend unavailable for {query!r}")
    return f"fresh results for {query!r}"


class FallbackWorkflow(Workflow):
    @step
    async def search(self, ev: StartEvent) -> Found | Degraded:
        query = ev.get("query", "")
        try:
            return Found(data=await flaky_search(query))
        except ConnectionError as err:  # expected and recoverable: answer from the cache instead
            return Degraded(reason=str(err))

    @step
    async def on_found(self, ev: Found) -> StopEvent:
        return StopEvent(result=f"ok: {ev.data}")

    @step
    async def on_degraded(self, ev: Degraded) -> StopEvent:
        return StopEvent(result=f"fallback (cached answer) after: {ev.reason}")


class AmountEvent(Event):
    amount: int


class FailingWorkflow(Workflow):
    @step
    async def parse(self, ev: StartEvent) -> AmountEvent:
        return AmountEvent(amount=int(ev.get("amount")))

    @step
    async def check_amount(self, ev: AmountEvent) -> StopEvent:
        if ev.amount < 0:
            raise ValueError(f"amount must be >= 0, got {ev.amount}")
        return StopEvent(result=ev.amount)


async def main() -> None:
    fallback = FallbackWorkflow(timeout=30)
    failing = FailingWorkflow(timeout=30)
    try:
        for query in ("rayflow docs", "search during outage"):
            print(await fallback.run(query=query))

        print(f"validated: {await failing.run(amount=3)}")
        try:
            await failing.run(amount=-1)
        except ValueError as err:  # the step's own exception type, not a wrapper
            print(f"caught {type(err).__name__}: {err}")
    finally:
        await fallback.close()
        await failing.close()


if __name__ == "__main__":
    asyncio.run(main())
