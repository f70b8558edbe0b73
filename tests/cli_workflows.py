"""Small workflows that the ``rayflow run`` / ``rayflow batch`` tests name on the command line (``cli_workflows:X``)."""

from __future__ import annotations

import asyncio

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class GreetStart(StartEvent):
    name: str
    times: int = 2


class Progress(Event):
    number: int
    note: str


class Greeter(Workflow):
    """Streams one ``Progress`` per greeting, then stops with a dict; the name ``fail`` makes the step raise after
    its first greeting."""

    @step
    async def greet(self, ctx: Context, ev: GreetStart) -> StopEvent:
        for number in range(ev.times):
            ctx.write_event_to_stream(Progress(number=number, note=f"hello {ev.name}"))
            if ev.name == "fail":
                raise ValueError("no greeting for fail")
        return StopEvent(result={"greeting": f"hello {ev.name}", "times": ev.times})


class Square(Workflow):
    """``x`` squared after ``delay`` seconds; a negative ``x`` fails, ``opaque`` returns a complex number (not JSON)."""

    @step
    async def square(self, ev: StartEvent) -> StopEvent:
        await asyncio.sleep(float(ev.get("delay", 0.0)))
        x = int(ev.get("x"))
        if x < 0:
            raise ValueError(f"negative input {x}")
        if ev.get("opaque"):
            return StopEvent(result=complex(x, 1))
        return StopEvent(result=x * x)
