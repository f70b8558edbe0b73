"""Conformance: ``ctx.store``, the run's shared state with the default dict-like state.

Reads and writes with dotted paths, defaults and the error for a missing path; ``get_state``, ``set_state``
and ``clear``; ``edit_state`` committing or rolling back; the store before, during and after a run, and
across runs that share one ``Context``. Typed (pydantic) state is in ``test_typed_state.py``.
"""

import pytest


async def test_a_dotted_path_written_in_one_step_is_read_in_the_next(engine):
    class Written(engine.Event):
        pass

    class Profile(engine.Workflow):
        @engine.step
        async def write(self, ctx: engine.Context, ev: engine.StartEvent) -> Written:
            await ctx.store.set("user.profile.name", "Ada")
            await ctx.store.set("user.profile.langs", ["en", "fr"])
            return Written()

        @engine.step
        async def read(self, ctx: engine.Context, ev: Written) -> engine.StopEvent:
            return engine.StopEvent(
                result=(
                    await ctx.store.get("user.profile.name"),
                    await ctx.store.get("user"),
                )
            )

    name, user = await Profile().run()
    assert name == "Ada"
    assert user == {"profile": {"name": "Ada", "langs": ["en", "fr"]}}


async def test_setting_a_nested_path_keeps_the_other_keys_of_its_parent(engine):
    class Nested(engine.Workflow):
        @engine.step
        async def edit(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("config", {"model": "small", "temperature": 0.2})
            before = await ctx.store.get("config.model")
            await ctx.store.set("config.model", "large")
            return engine.StopEvent(result=(before, await ctx.store.get("config")))

    before, config = await Nested().run()
    assert before == "small"
    assert config == {"model": "large", "temperature": 0.2}


async def test_a_missing_path_gives_the_default_when_one_is_passed(engine):
    class Defaults(engine.Workflow):
        @engine.step
        async def read(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("present", {"inner": 1})
            return engine.StopEvent(
                result=[
                    await ctx.store.get("absent", default=None),
                    await ctx.store.get("absent", default="fallback"),
                    await ctx.store.get("present.missing", default=0),
                    await ctx.store.get("present.inner.deeper", default="no such path"),
                ]
            )

    assert await Defaults().run() == [None, "fallback", 0, "no such path"]


async def test_reading_a_missing_path_without_default_fails_the_step_with_value_error(engine):
    class Missing(engine.Workflow):
        @engine.step
        async def read(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("known", 1)
            return engine.StopEvent(result=await ctx.store.get("known.child"))

    with pytest.raises(ValueError, match=r"Path 'known\.child' not found"):
        await Missing().run()


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
    with pytest.raises(ValueError, match="not found"):
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


async def test_get_state_returns_the_whole_state_and_set_state_replaces_it(engine):
    class Replace(engine.Workflow):
        @engine.step
        async def swap(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("old", "value")
            state = await ctx.store.get_state()
            seen = state["old"]
            fresh = type(state)()
            fresh["new"] = 2
            await ctx.store.set_state(fresh)
            return engine.StopEvent(
                result=(seen, await ctx.store.get("old", default="gone"), await ctx.store.get("new"))
            )

    assert await Replace().run() == ("value", "gone", 2)


async def test_clear_empties_the_state(engine):
    class Clearing(engine.Workflow):
        @engine.step
        async def wipe(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("name", "Grace")
            await ctx.store.set("visits.count", 3)
            await ctx.store.clear()
            return engine.StopEvent(
                result=(await ctx.store.get("name", default=None), await ctx.store.get("visits", default=None))
            )

    assert await Clearing().run() == (None, None)


async def test_edit_state_commits_every_change_of_the_block_at_its_end(engine):
    class Editing(engine.Workflow):
        @engine.step
        async def edit(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("counter", 41)
            async with ctx.store.edit_state() as state:
                state["counter"] = state.get("counter", 0) + 1
                state["tags"] = ["a", "b"]
                state["nested"] = {"deep": "value"}
            return engine.StopEvent(
                result=[
                    await ctx.store.get("counter"),
                    await ctx.store.get("tags"),
                    await ctx.store.get("nested.deep"),
                ]
            )

    assert await Editing().run() == [42, ["a", "b"], "value"]


async def test_edit_state_leaves_the_state_unchanged_when_its_block_raises(engine):
    class Rollback(engine.Workflow):
        @engine.step
        async def edit(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("status", "original")
            raised = None
            try:
                async with ctx.store.edit_state() as state:
                    state["status"] = "half-written"
                    state["added"] = True
                    raise LookupError("abandon this edit")
            except LookupError as err:
                raised = str(err)
            return engine.StopEvent(
                result=(raised, await ctx.store.get("status"), await ctx.store.get("added", default="absent"))
            )

    assert await Rollback().run() == ("abandon this edit", "original", "absent")


async def test_edit_state_on_the_pre_run_store_rolls_back_and_reraises(engine):
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


async def test_runs_that_share_a_context_continue_its_state_and_a_run_without_one_starts_empty(engine):
    class Visits(engine.Workflow):
        @engine.step
        async def count(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            visits = await ctx.store.get("visits", default=0) + 1
            await ctx.store.set("visits", visits)
            return engine.StopEvent(result=visits)

    workflow = Visits()
    first = workflow.run()
    assert await first == 1
    assert await workflow.run(ctx=first.ctx) == 2
    assert await workflow.run(ctx=first.ctx) == 3
    assert await workflow.run() == 1
    assert await first.ctx.store.get("visits") == 3


async def test_concurrent_runs_each_have_their_own_state(engine):
    class Named(engine.Workflow):
        @engine.step
        async def remember(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("who", ev.who)
            return engine.StopEvent(result=await ctx.store.get("who"))

    workflow = Named()
    handlers = [workflow.run(who=name) for name in ("ann", "bob", "cy")]
    assert [await h for h in handlers] == ["ann", "bob", "cy"]
    assert [await h.ctx.store.get("who") for h in handlers] == ["ann", "bob", "cy"]


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
