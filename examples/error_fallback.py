"""Errors: degrade gracefully with a fallback event, or let a step raise and catch the original error.

python examples/error_fallback.py
"""

from __future__ import annotations

import asyncio
from typing import Union

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class SuccessEvent(Event):
    data: str


class FallbackEvent(Event):
    error: str


async def do_risky_thing(query: str) -> str:
    """Stands in for a flaky call (an API, a tool): fails on queries that mention "outage"."""
    if "outage" in query:
        raise ConnectionError(f"search backend unavailable for {query!r}")
    return f"fresh results for {query!r}"


class FallbackWorkflow(Workflow):
    # `Union[A, B]` is the tutorial's spelling; `A | B` works the same.
    @step
    async def risky_step(self, ctx: Context, ev: StartEvent) -> Union[SuccessEvent, FallbackEvent]:  # noqa: UP007
        try:
            result = await do_risky_thing(ev.get("query", ""))
            return SuccessEvent(data=result)
        except Exception as e:
            return FallbackEvent(error=str(e))

    @step
    async def on_success(self, ev: SuccessEvent) -> StopEvent:
        return StopEvent(result=f"ok: {ev.data}")

    @step
    async def on_fallback(self, ev: FallbackEvent) -> StopEvent:
        return StopEvent(result=f"fallback (cached answer) after: {ev.error}")


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
