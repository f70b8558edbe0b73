"""Conformance: typed state, ``Context[MyState]`` with a pydantic model.

The store starts as the model's defaults, hands out copies, validates writes the model validates, resets
to defaults on ``clear``, and serialises concurrent ``edit_state`` blocks. Each test defines its own model
(engine-independent, but local to the test so it travels to step actors by value), except ``Progress``, which
LlamaIndex must be able to import.
"""

import asyncio

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError


async def test_typed_state_starts_from_its_defaults_changes_by_path_or_by_model_and_hands_out_copies(engine):
    class Account(BaseModel):
        owner: str = "nobody"
        balance: int = 0
        history: list[str] = Field(default_factory=list)

    class Opened(engine.Event):
        pass

    class Bank(engine.Workflow):
        @engine.step
        async def open(self, ctx: engine.Context[Account], ev: engine.StartEvent) -> Opened:
            defaults = await ctx.store.get_state()
            await ctx.store.set(
                "history", [type(defaults).__name__, defaults.owner, str(await ctx.store.get("balance"))]
            )
            await ctx.store.set("owner", "Ada")
            await ctx.store.set("balance", 100)
            return Opened()

        @engine.step
        async def deposit(self, ctx: engine.Context[Account], ev: Opened) -> engine.StopEvent:
            state = await ctx.store.get_state()
            state.balance += 50
            await ctx.store.set_state(state)
            copy = await ctx.store.get_state()
            copy.owner = "changed on the copy only"
            return engine.StopEvent(result=(await ctx.store.get("balance"), await ctx.store.get("owner")))

    handler = Bank().run()
    assert await handler == (150, "Ada")
    final = await handler.ctx.store.get_state()
    assert isinstance(final, BaseModel)
    assert type(final).__name__ == "Account"
    assert (final.owner, final.balance, final.history) == ("Ada", 150, ["Account", "nobody", "0"])


async def test_a_write_the_model_refuses_raises_validation_error_and_keeps_the_old_value(engine):
    class Strict(BaseModel):
        model_config = ConfigDict(validate_assignment=True, strict=True)
        age: int = 0

    class Ages(engine.Workflow):
        @engine.step
        async def write(self, ctx: engine.Context[Strict], ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("age", 30)
            try:
                await ctx.store.set("age", "thirty")
            except ValidationError as err:
                return engine.StopEvent(result=(err.errors()[0]["loc"], await ctx.store.get("age")))
            return engine.StopEvent(result="accepted")

    workflow = Ages()
    assert await workflow.run() == (("age",), 30)

    store = engine.Context(workflow).store
    with pytest.raises(ValidationError, match="age"):
        await store.set("age", "not a number")
    assert await store.get("age") == 0


async def test_clear_resets_typed_state_to_the_defaults_of_its_current_type(engine):
    class Base(BaseModel):
        level: int = 1

    class Extended(Base):
        bonus: int = 5

    class Levels(engine.Workflow):
        @engine.step
        async def only(self, ctx: engine.Context[Base], ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    store = engine.Context(Levels()).store
    await store.set_state(Extended(level=9, bonus=70))
    assert (await store.get("level"), await store.get("bonus")) == (9, 70)
    await store.clear()
    state = await store.get_state()
    assert type(state).__name__ == "Extended"
    assert (state.level, state.bonus) == (1, 5)


async def test_edit_state_blocks_of_parallel_steps_never_interleave(engine):
    class Tally(BaseModel):
        entered: int = 0
        done: int = 0

    class Work(engine.Event):
        pass

    class Finished(engine.Event):
        pass

    workers = 8

    class Parallel(engine.Workflow):
        @engine.step
        async def fan_out(self, ctx: engine.Context[Tally], ev: engine.StartEvent) -> Work:
            for _ in range(workers - 1):
                ctx.send_event(Work())
            return Work()

        @engine.step(num_workers=4)
        async def work(self, ctx: engine.Context[Tally], ev: Work) -> Finished:
            async with ctx.store.edit_state() as state:
                state.entered += 1
                await asyncio.sleep(0.01)  # hold the block open while other workers try to enter: none may
                state.done += 1
            return Finished()

        @engine.step
        async def gather(self, ctx: engine.Context[Tally], ev: Finished) -> engine.StopEvent | None:
            if ctx.collect_events(ev, [Finished] * workers) is None:
                return None
            state = await ctx.store.get_state()
            return engine.StopEvent(result=(state.entered, state.done))

    assert await Parallel().run() == (workers, workers)


class Progress(BaseModel):
    """Module level, unlike the other models here: LlamaIndex carries state into a continued run by its
    snapshot, which names the model's class and imports it again (a class local to a test is not found)."""

    runs: int = 0
    seen: list[str] = Field(default_factory=list)


async def test_runs_sharing_a_context_share_typed_state(engine):
    class Resumable(engine.Workflow):
        @engine.step
        async def step_once(self, ctx: engine.Context[Progress], ev: engine.StartEvent) -> engine.StopEvent:
            async with ctx.store.edit_state() as state:
                state.runs += 1
                state.seen.append(ev.tag)
            return engine.StopEvent(result=await ctx.store.get("runs"))

    workflow = Resumable()
    ctx = engine.Context(workflow)
    assert await workflow.run(ctx=ctx, tag="a") == 1
    assert await workflow.run(ctx=ctx, tag="b") == 2
    state = await ctx.store.get_state()
    assert (state.runs, state.seen) == (2, ["a", "b"])
    assert await workflow.run(tag="fresh") == 1
