"""Helpers of the conformance tests of runs: reading a run's whole stream, and giving an event class made in a
test a module-level name (LlamaIndex imports the classes a snapshot names by their qualified name)."""

import asyncio

#: Seconds a test waits for a stream to end before calling it a hang (a first run on rayflow starts actors).
STREAM_LIMIT_S = 20


async def whole_stream(handler):
    """Every event the run streams, the last one (the StopEvent, or the timeout or cancel event) included."""

    async def read():
        return [ev async for ev in handler.stream_events()]

    return await asyncio.wait_for(read(), timeout=STREAM_LIMIT_S)


def at_module_level(cls, engine):
    """``cls``, made in a function as every event of this suite is, renamed ``<Name>For<Engine>`` and bound to
    that name in this module, so that ``run_helpers.<Name>For<Engine>`` imports it like a top-level class."""
    name = f"{cls.__name__}For{engine.name.capitalize()}"
    cls.__name__ = cls.__qualname__ = name
    cls.__module__ = __name__
    globals()[name] = cls
    return cls
