"""Conformance: ``ctx.collect_events``, a step waiting until a set of events has arrived.

``None`` until the buffer holds every listed type (with multiplicity), then the events in the order of the
expected list, whatever order they came in; events of other types are not held; a completed buffer starts
empty again; ``buffer_id`` keeps separate collections apart.
"""


async def test_collected_events_come_in_the_order_of_the_expected_list_once_all_have_arrived(engine):
    class Question(engine.Event):
        text: str

    class Passage(engine.Event):
        text: str

    class Join(engine.Workflow):
        @engine.step
        async def ask(self, ev: engine.StartEvent) -> Question:
            return Question(text="the question")

        @engine.step
        async def retrieve(self, ev: Question) -> Passage:  # so the passage arrives after the question
            return Passage(text="the passage")

        @engine.step(num_workers=1)  # one call per event, so the calls that found the set incomplete are counted
        async def answer(self, ctx: engine.Context, ev: Question | Passage) -> engine.StopEvent | None:
            got = ctx.collect_events(ev, [Passage, Question])
            if got is None:
                await ctx.store.set("incomplete", await ctx.store.get("incomplete", default=0) + 1)
                return None
            return engine.StopEvent(
                result=([type(e).__name__ for e in got], [e.text for e in got], await ctx.store.get("incomplete"))
            )

    assert await Join().run() == (["Passage", "Question"], ["the passage", "the question"], 1)


async def test_a_type_listed_several_times_waits_for_that_many_events(engine):
    class Vote(engine.Event):
        choice: str

    class Tally(engine.Event):
        pass

    class Ballot(engine.Workflow):
        @engine.step
        async def cast(self, ctx: engine.Context, ev: engine.StartEvent) -> Vote | Tally:
            for choice in ("yes", "no", "yes"):
                ctx.send_event(Vote(choice=choice))
            return Tally()

        @engine.step(num_workers=1)
        async def count(self, ctx: engine.Context, ev: Vote | Tally) -> engine.StopEvent | None:
            got = ctx.collect_events(ev, [Tally, Vote, Vote, Vote])
            if got is None:
                await ctx.store.set("waits", await ctx.store.get("waits", default=0) + 1)
                return None
            return engine.StopEvent(
                result=(
                    type(got[0]).__name__,
                    sorted(v.choice for v in got[1:]),
                    await ctx.store.get("waits"),
                )
            )

    assert await Ballot().run() == ("Tally", ["no", "yes", "yes"], 3)


async def test_an_empty_expected_list_is_complete_at_once(engine):
    class Nothing(engine.Workflow):
        @engine.step
        async def gather(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=ctx.collect_events(ev, []))

    assert await Nothing().run() == []


async def test_an_event_of_a_type_not_listed_is_not_held_in_the_buffer(engine):
    class Wanted(engine.Event):
        n: int

    class Noise(engine.Event):
        pass

    class Filter(engine.Workflow):
        @engine.step
        async def emit(self, ctx: engine.Context, ev: engine.StartEvent) -> Wanted | Noise:
            ctx.send_event(Noise())
            ctx.send_event(Wanted(n=1))
            ctx.send_event(Noise())
            return Wanted(n=2)

        @engine.step
        async def gather(self, ctx: engine.Context, ev: Wanted | Noise) -> engine.StopEvent | None:
            got = ctx.collect_events(ev, [Wanted, Wanted])
            if got is None:
                return None
            return engine.StopEvent(result=sorted((type(e).__name__, e.n) for e in got))

    assert await Filter().run() == [("Wanted", 1), ("Wanted", 2)]


async def test_a_completed_buffer_starts_empty_for_the_next_round(engine):
    class Part(engine.Event):
        n: int

    class Rounds(engine.Workflow):
        @engine.step
        async def emit(self, ctx: engine.Context, ev: engine.StartEvent) -> Part:
            for n in (1, 2, 3):
                ctx.send_event(Part(n=n))
            return Part(n=4)

        @engine.step(num_workers=1)
        async def gather(self, ctx: engine.Context, ev: Part) -> engine.StopEvent | None:
            got = ctx.collect_events(ev, [Part, Part])
            if got is None:
                return None
            rounds = [*await ctx.store.get("rounds", default=[]), sorted(p.n for p in got)]
            await ctx.store.set("rounds", rounds)
            if len(rounds) < 2:
                return None
            return engine.StopEvent(result=rounds)

    rounds = await Rounds().run()
    assert [len(r) for r in rounds] == [2, 2]
    assert sorted(rounds[0] + rounds[1]) == [1, 2, 3, 4]


async def test_buffer_ids_keep_collections_of_the_same_types_apart(engine):
    class Score(engine.Event):
        team: str
        points: int

    class Match(engine.Workflow):
        @engine.step
        async def play(self, ctx: engine.Context, ev: engine.StartEvent) -> Score:
            ctx.send_event(Score(team="red", points=1))
            ctx.send_event(Score(team="blue", points=2))
            ctx.send_event(Score(team="blue", points=3))
            return Score(team="red", points=4)

        @engine.step(num_workers=1)
        async def referee(self, ctx: engine.Context, ev: Score) -> engine.StopEvent | None:
            got = ctx.collect_events(ev, [Score, Score], buffer_id=f"team-{ev.team}")
            if got is None:
                return None
            totals = await ctx.store.get("totals", default={})
            totals[ev.team] = (sorted(s.team for s in got), sorted(s.points for s in got))
            await ctx.store.set("totals", totals)
            return engine.StopEvent(result=totals) if len(totals) == 2 else None

    assert await Match().run() == {"red": (["red", "red"], [1, 4]), "blue": (["blue", "blue"], [2, 3])}
