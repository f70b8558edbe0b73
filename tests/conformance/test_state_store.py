"""Conformance: ``ctx.store``, the run's shared state with the default dict-like state.

Reads and writes with dotted paths, defaults and the error for a missing path; ``get_state``, ``set_state``
and ``clear``; ``edit_state`` committing or rolling back; the store before, during and after a run, and
across runs that share one ``Context``. Typed (pydantic) state is in ``test_typed_state.py``.

Each workflow costs actors on rayflow, so one workflow checks a few neighbouring facts, each asserted alone.
"""

import pytest


async def test_dotted_paths_create_reach_into_and_replace_nested_values_across_steps(engine):
    class Written(engine.Event):
        pass

    class Profile(engine.Workflow):
        @engine.step
        async def write(self, ctx: engine.Context, ev: engine.StartEvent) -> Written:
            await ctx.store.set("user.profile.name", "Ada")
            await ctx.store.set("user.profile.langs", ["en", "fr"])
            await ctx.store.set("config", {"model": "small", "temperature": 0.2})
            return Written()

        @engine.step
        async def read(self, ctx: engine.Context, ev: Written) -> engine.StopEvent:
            name = await ctx.store.get("user.profile.name")
            user = await ctx.store.get("user")
            await ctx.store.set("config.model", "large")
            return engine.StopEvent(result=(name, user, await ctx.store.get("config")))

    name, user, config = await Profile().run()
    assert name == "Ada"
    assert user == {"profile": {"name": "Ada", "langs": ["en", "fr"]}}
    assert config == {"model": "large", "temperature": 0.2}


async def test_a_missing_path_gives_the_default_or_raises_value_error_naming_the_path(engine):
    class Defaults(engine.Workflow):
        @engine.step
        async def read(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("present", {"inner": 1})
            defaults = [
                await ctx.store.get("absent", default=None),
                await ctx.store.get("absent", default="fallback"),
                await ctx.store.get("present.missing", default=0),
                await ctx.store.get("present.inner.deeper", default="no such path"),
            ]
            try:
                await ctx.store.get("present.missing")
            except ValueError as err:
                return engine.StopEvent(result=(defaults, str(err)))
            return engine.StopEvent(result=(defaults, "no error"))

    defaults, error = await Defaults().run()
    assert defaults == [None, "fallback", 0, "no such path"]
    assert "Path 'present.missing' not found" in error


async def test_the_store_of_a_context_made_before_the_run_reads_writes_and_seeds_the_run(engine):
    class Seeded(engine.Workflow):
        @engine.step
        async def read(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            greeting = await ctx.store.get("greeting")
            await ctx.store.set("greeting", greeting.upper())
            return engine.StopEvent(result=greeting)

    workflow = Seeded()
    ctx = engine.Context(workflow)
    assert await ctx.store.get("greeting", default="unset") == "unset"
    with pytest.raises(ValueError, match="Path 'greeting' not found"):
        await ctx.store.get("greeting")
    await ctx.store.set("greeting", "hello")
    assert await ctx.store.get("greeting") == "hello"

    handler = workflow.run(ctx=ctx)
    assert await handler == "hello"
    assert await handler.ctx.store.get("greeting") == "HELLO"


async def test_the_handler_writes_state_that_a_later_step_of_the_running_run_reads(engine):
    class Reply(engine.Workflow):
        @engine.step
        async def ask(self, ev: engine.StartEvent) -> engine.InputRequiredEvent:
            return engine.InputRequiredEvent()

        @engine.step
        async def answer(self, ctx: engine.Context, ev: engine.HumanResponseEvent) -> engine.StopEvent:
            return engine.StopEvent(result=(ev.response, await ctx.store.get("note")))

    handler = Reply().run()
    async for ev in handler.stream_events():
        if isinstance(ev, engine.InputRequiredEvent):
            await handler.ctx.store.set("note", "written by the caller")
            assert await handler.ctx.store.get("note") == "written by the caller"
            handler.ctx.send_event(engine.HumanResponseEvent(response="yes"))
    assert await handler == ("yes", "written by the caller")


async def test_set_state_replaces_the_whole_state_and_clear_empties_it(engine):
    class Replace(engine.Workflow):
        @engine.step
        async def swap(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("old", "value")
            state = await ctx.store.get_state()
            fresh = type(state)()
            fresh["new"] = 2
            await ctx.store.set_state(fresh)
            replaced = (state["old"], await ctx.store.get("old", default="gone"), await ctx.store.get("new"))
            await ctx.store.set("visits.count", 3)
            await ctx.store.clear()
            cleared = (await ctx.store.get("new", default=None), await ctx.store.get("visits", default=None))
            return engine.StopEvent(result=(replaced, cleared))

    replaced, cleared = await Replace().run()
    assert replaced == ("value", "gone", 2)
    assert cleared == (None, None)


async def test_edit_state_commits_its_block_at_the_end_and_discards_it_when_the_block_raises(engine):
    class Editing(engine.Workflow):
        @engine.step
        async def edit(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("counter", 41)
            async with ctx.store.edit_state() as state:
                state["counter"] = state.get("counter", 0) + 1
                state["tags"] = ["a", "b"]
                state["nested"] = {"deep": "value"}
            committed = [
                await ctx.store.get("counter"),
                await ctx.store.get("tags"),
                await ctx.store.get("nested.deep"),
            ]
            raised = None
            try:
                async with ctx.store.edit_state() as state:
                    state["counter"] = -1
                    state["added"] = True
                    raise LookupError("abandon this edit")
            except LookupError as err:
                raised = str(err)
            discarded = (raised, await ctx.store.get("counter"), await ctx.store.get("added", default="absent"))
            return engine.StopEvent(result=(committed, discarded))

    committed, discarded = await Editing().run()
    assert committed == [42, ["a", "b"], "value"]
    assert discarded == ("abandon this edit", 42, "absent")


async def test_edit_state_on_the_callers_store_rolls_back_and_reraises(engine):
    class Idle(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    store = engine.Context(Idle()).store
    await store.set("value", "kept")
    with pytest.raises(KeyError, match="stop here"):
        async with store.edit_state() as state:
            state["value"] = "discarded"
            raise KeyError("stop here")
    assert await store.get("value") == "kept"


async def test_runs_sharing_a_context_continue_its_state_and_other_runs_start_empty(engine):
    class Visits(engine.Workflow):
        @engine.step
        async def count(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            visits = await ctx.store.get("visits", default=0) + 1
            await ctx.store.set("visits", visits)
            await ctx.store.set("who", ev.who)
            return engine.StopEvent(result=visits)

    workflow = Visits()
    first = workflow.run(who="ann")
    assert await first == 1
    assert await workflow.run(ctx=first.ctx, who="ann") == 2
    assert await workflow.run(ctx=first.ctx, who="ann") == 3
    assert await first.ctx.store.get("visits") == 3

    concurrent = [workflow.run(who=name) for name in ("bob", "cy")]
    assert [await h for h in concurrent] == [1, 1]
    assert [await h.ctx.store.get("who") for h in concurrent] == ["bob", "cy"]


# -- the context outside its steps ---------------------------------------------------------------------------------


async def test_sending_an_event_needs_a_started_run_and_a_step_that_exists_and_accepts_it(engine):
    class Paused(engine.Workflow):
        @engine.step
        async def ask(self, ev: engine.StartEvent) -> engine.InputRequiredEvent:
            return engine.InputRequiredEvent()

        @engine.step
        async def answer(self, ev: engine.HumanResponseEvent) -> engine.StopEvent:
            return engine.StopEvent(result=ev.response)

    workflow = Paused()
    with pytest.raises(engine.ContextStateError, match=r"send_event.*before workflow started"):
        engine.Context(workflow).send_event(engine.HumanResponseEvent(response="too early"))

    handler = workflow.run()
    with pytest.raises(engine.WorkflowRuntimeError, match="Step no_such_step does not exist"):
        handler.ctx.send_event(engine.HumanResponseEvent(response="lost"), step="no_such_step")
    with pytest.raises(
        engine.WorkflowRuntimeError, match=r"Step answer does not accept event of type <class '.*Event'>"
    ):
        handler.ctx.send_event(engine.Event(), step="answer")
    handler.ctx.send_event(engine.HumanResponseEvent(response="on time"), step="answer")
    assert await handler == "on time"


# -- the 1.x calls the tutorial uses ------------------------------------------------------------------------------


@pytest.mark.rayflow_only("LlamaIndex 2.26 removed Context.get/Context.set (1.x calls the tutorial still uses)")
async def test_the_1x_ctx_get_and_set_reach_the_store_with_a_deprecation_warning(engine):
    class Legacy(engine.Workflow):
        @engine.step
        async def bump(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            number = await ctx.get("number", default=0)
            await ctx.set("number", number + 1)
            return engine.StopEvent(result=await ctx.store.get("number"))

    workflow = Legacy()
    ctx = engine.Context(workflow)
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        assert await ctx.get("number", default=10) == 10
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        await ctx.set("number", 10)
    assert await ctx.store.get("number") == 10

    handler = workflow.run(ctx=ctx)
    assert await handler == 11
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        assert await handler.ctx.get("number") == 11
    with pytest.raises(ValueError, match="not found"), pytest.warns(DeprecationWarning):
        await handler.ctx.get("never.set")
