"""Streaming: a step writes progress events to the stream; the caller reads them, then awaits the result.

python examples/streaming.py
"""

from __future__ import annotations

import asyncio

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

WORK_SECONDS = 0.3  # simulated work per stage (the tutorial sleeps 1 s)


class ProgressEvent(Event):
    message: str


class StreamingWorkflow(Workflow):
    @step
    async def step1(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(ProgressEvent(message="Step 1: Retrieving documents..."))
        await asyncio.sleep(WORK_SECONDS)  # simulate work

        ctx.write_event_to_stream(ProgressEvent(message="Step 2: Generating answer..."))
        await asyncio.sleep(WORK_SECONDS)

        return StopEvent(result=f"Final answer to {ev.get('query')!r}")


async def main() -> None:
    workflow = StreamingWorkflow(timeout=30)
    try:
        handler = workflow.run(query="test question")

        # Stream progress events as they arrive
        async for event in handler.stream_events():
            if isinstance(event, ProgressEvent):
                print(f"Progress: {event.message}")

        # Get final result
        result = await handler
        print(f"Result: {result}")
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
