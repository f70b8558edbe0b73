"""The routing table: which steps receive an event, from the event's type keys alone."""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from rayflow.core.envelope import Envelope


def delivers(declared: Container[str], subclasses: bool, type_keys: tuple[str, ...]) -> bool:
    """The delivery rule: an event whose type keys (its class first, then its event bases) are ``type_keys`` goes
    where its class is ``declared``, or one of its bases is and ``subclasses`` are taken too."""
    if type_keys[0] in declared:
        return True
    return subclasses and any(k in declared for k in type_keys[1:])


@dataclass(frozen=True)
class StepRoute:
    """A step as routing sees it: the type keys it accepts and how its pool behaves."""

    name: str
    accepts: frozenset[str]
    num_workers: int = 1
    accept_subclasses: bool = False
    #: The step calls ``collect_events``: all events of one run go to one actor of its pool.
    collects: bool = False
    #: For a ``@catch_error`` step: the steps it covers (None: every step no scoped handler covers).
    catches: tuple[str, ...] | None = None
    is_catch_error: bool = False
    max_recoveries: int = 1
    #: Type keys of the events the step returns (its return annotation): where its events go next.
    returns: frozenset[str] = frozenset()
    #: Another step's actor may run this step, on a slot of this step's pool lent to it (see ``successors``):
    #: the step keeps no per-actor state (collect buffers, resources, ``self``) and has no placement of its own.
    lendable: bool = False
    #: Seconds one invocation may take (``@step(timeout=...)``); past it the invocation is stopped, its actor
    #: replaced when it cannot be stopped otherwise. None: no limit.
    timeout: float | None = None
    #: The most invocations going at once across every run (``@step(max_in_flight=...)``); None: no such cap.
    max_in_flight: int | None = None
    #: Actors the pool starts with, before any event needs them (``@step(warm=...)``); it grows from there toward
    #: ``num_workers`` while events wait.
    warm: int = 1
    #: The step may return a list of events, each delivered on its own, together a stream (``-> list[E]``).
    fans_out: bool = False
    #: For a join (``list[E]`` parameter): the fan-out steps whose streams it joins; None for other steps.
    joins: frozenset[str] | None = None
    #: For a join with ``Take(n)``: n (it runs at the n-th event of a stream); None: once the stream's work is over.
    take: int | None = None
    #: For a step of several event parameters: the type keys each parameter takes, in order; it runs once one
    #: event of each has arrived.
    slots: tuple[frozenset[str], ...] = ()
    #: GPUs each actor of the pool reserves (``@step(num_gpus=...)``): where Ray may place them.
    num_gpus: float = 0.0


@dataclass
class RoutingTable:
    """Maps an event's type keys to the steps that accept it; lookups are cached per type."""

    steps: dict[str, StepRoute]
    _exact: dict[str, list[str]] = field(default_factory=dict, init=False)
    _cache: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, init=False)
    _successors: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)
    #: For each fan-out step, the joins of its streams.
    joins_of: dict[str, list[str]] = field(default_factory=dict, init=False)

    @classmethod
    def of(cls, routes: Iterable[StepRoute]) -> RoutingTable:
        table = cls({r.name: r for r in routes})
        for route in table.steps.values():
            if route.is_catch_error:
                continue
            for key in route.accepts:
                table._exact.setdefault(key, []).append(route.name)
        for route in table.steps.values():
            for source in sorted(route.joins or ()):
                table.joins_of.setdefault(source, []).append(route.name)
        for route in table.steps.values():
            after = dict.fromkeys(n for key in sorted(route.returns) for n in table._exact.get(key, ()))
            table._successors[route.name] = tuple(n for n in after if n != route.name and table.steps[n].lendable)
        return table

    def successors(self, step: str) -> tuple[str, ...]:
        """The lendable steps that accept an event type ``step`` returns: the next hops a call of ``step`` may run
        on its own actor. (Steps reached only as subclass handlers are left out: they just take the slower path.)"""
        return self._successors.get(step, ())

    def targets(self, envelope: Envelope) -> tuple[str, ...]:
        """Every step that receives ``envelope``: its target alone, or each step accepting its type."""
        if envelope.target is not None:
            return (envelope.target,)
        keys = envelope.type_keys
        found = self._cache.get(keys)
        if found is None:
            found = self._cache[keys] = tuple(
                name for name, route in self.steps.items() if not route.is_catch_error and self.accepts(name, keys)
            )
        return found

    def accepts(self, step: str, type_keys: tuple[str, ...]) -> bool:
        """Whether ``step`` receives an event with ``type_keys`` (see ``delivers``)."""
        route = self.steps[step]
        return delivers(route.accepts, route.accept_subclasses, type_keys)

    def catch_handler(self, failed_step: str) -> StepRoute | None:
        """The ``@catch_error`` step covering ``failed_step``: a scoped one first, else a wildcard."""
        wildcard = None
        for route in self.steps.values():
            if not route.is_catch_error or route.name == failed_step:
                continue
            if route.catches is None:
                wildcard = wildcard or route
            elif failed_step in route.catches:
                return route
        return wildcard
