"""Streaming: a step reports its stages as it goes; the caller prints them as they arrive, then the result.

``ctx.write_event_to_stream`` sends an event to whoever reads ``handler.stream_events()``; no step receives it.
The stream ends with the StopEvent, after which ``await handler`` gives the result at once.

    python examples/streaming.py
"""

from __future__ import annotations

import asyncio

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

STAGES = ("searching the index", "drafting the reply")
STAGE_SECONDS = 0.3  # stands in for the work of each stage


class StageEvent(Event):
    number: int
    total: int
    name: str


class ReportingWorkflow(Workflow):
    @step
    async def work(self, ctx: Context, ev: StartEvent) -> StopEvent:
        for number, name in enumerate(STAGES, start=1):
            ctx.write_event_to_stream(StageEvent(number=number, total=len(STAGES), name=name))
            await asyncio.sleep(STAGE_SECONDS)
        return StopEvent(result=f"reply to {ev.get('question')!r}")


async def main() -> None:
    workflow = ReportingWorkflow(timeout=30)
    try:
        handler = workflow.run(question="how do retries work?")
        async for event in handler.stream_events():
            if isinstance(event, StageEvent):
                print(f"stage {event.number}/{event.total}: {event.name}")
        print(f"result: {await handler}")
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
