"""Defaults in one place: every tunable number of rayflow, each readable from a ``RAYFLOW_*`` variable.

Read once per process through :func:`settings`; tests and actors never hard-code these numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


@dataclass(frozen=True)
class Settings:
    """Engine defaults; see the README's configuration table for what each one changes."""

    #: Largest number of events sent to one step actor in one call.
    max_batch: int = field(default_factory=lambda: _int("RAYFLOW_MAX_BATCH", 256))
    #: Events in a step's first call, before its time per event is known.
    first_batch: int = field(default_factory=lambda: _int("RAYFLOW_FIRST_BATCH", 8))
    #: Seconds of work one step call should carry: events of a step faster than this are batched (a call costs
    #: about 2 ms of CPU here, so 20 ms calls of CPU-bound work lost 10% of it). Steps under 20 ms an event are
    #: "fast": a chain of them runs on one actor (lent slots).
    batch_target_s: float = field(default_factory=lambda: _float("RAYFLOW_BATCH_TARGET_S", 0.1))
    #: Step calls queued on one actor beyond the running one (hides the call round trip).
    actor_pipeline: int = field(default_factory=lambda: _int("RAYFLOW_ACTOR_PIPELINE", 1))
    #: Calls one step actor runs at once, each of another run (a step awaiting I/O for one run does not hold its
    #: actor from the others); the calls of one run on an actor run one after the other.
    actor_calls: int = field(default_factory=lambda: _int("RAYFLOW_ACTOR_CALLS", 100))
    #: Bytes above which an event's large buffers (numpy arrays, bytearrays) or its whole pickled body travel as
    #: refs into Ray's object store instead of inline in batches through the dispatcher (``rayflow.payloads``).
    inline_max_bytes: int = field(default_factory=lambda: _int("RAYFLOW_INLINE_MAX_BYTES", 256 * 1024))
    #: Events a step emits before its outbox is flushed to the dispatcher while it still runs.
    outbox_flush: int = field(default_factory=lambda: _int("RAYFLOW_OUTBOX_FLUSH", 1000))
    #: Times a step may run an event it returned to itself (a loop) without a dispatcher round trip.
    local_hops: int = field(default_factory=lambda: _int("RAYFLOW_LOCAL_HOPS", 100))
    #: Copies of context states a step actor keeps to serve ``ctx.store`` reads locally (the least recently used
    #: is dropped; a dropped copy costs one round trip to the context actor at the next read).
    state_replicas: int = field(default_factory=lambda: _int("RAYFLOW_STATE_REPLICAS", 64))
    #: Pickled bytes above which a context's state is not copied into step actors: their reads of it go to the
    #: context actor, path by path (a large state would cost a whole copy per actor and per change).
    state_copy_max_bytes: int = field(default_factory=lambda: _int("RAYFLOW_STATE_COPY_MAX_BYTES", 1 << 20))
    #: Seconds a step actor's copy of a state serves reads after the context actor last confirmed it: how late a
    #: step may see a write made meanwhile by a step running at the same time (writes made before its event it
    #: always sees).
    state_max_age_s: float = field(default_factory=lambda: _float("RAYFLOW_STATE_MAX_AGE_S", 0.1))
    #: Ended runs a step actor remembers, to skip their events still queued for it.
    ended_runs_memory: int = field(default_factory=lambda: _int("RAYFLOW_ENDED_RUNS_MEMORY", 10_000))
    #: Ended runs whose unfinished work the dispatcher keeps for a snapshot taken after the end.
    ended_snapshots: int = field(default_factory=lambda: _int("RAYFLOW_ENDED_SNAPSHOTS", 1000))
    #: Calls one step actor or context actor serves at once (control calls reach a busy actor).
    actor_max_concurrency: int = field(default_factory=lambda: _int("RAYFLOW_ACTOR_MAX_CONCURRENCY", 1000))
    #: Calls the dispatcher serves at once (every run's stream reader, every step's emits).
    dispatcher_max_concurrency: int = field(default_factory=lambda: _int("RAYFLOW_DISPATCHER_MAX_CONCURRENCY", 10_000))
    #: Seconds a workflow's actors stay alive with no run before they are released.
    idle_release_s: float = field(default_factory=lambda: _float("RAYFLOW_IDLE_RELEASE_S", 600.0))
    #: Idle actor sets (a dispatcher, its context actor and step actors) the driver keeps parked for new workflow
    #: instances: sets released by closed, collected or idle instances, and spares started ahead of need (0: none;
    #: every released set is stopped and every instance starts its own actors).
    park_sets: int = field(default_factory=lambda: _int("RAYFLOW_PARK_SETS", 4))
    #: Blank sets started ahead of need for each workflow shape (its step names and warm sizes) whose instance just
    #: started actors, so that the next instance of that shape starts warm (0: none; they count in ``park_sets``).
    spare_sets: int = field(default_factory=lambda: _int("RAYFLOW_SPARE_SETS", 1))
    #: Seconds an instance that started or took a set must go without a run before the spare of its shape starts
    #: (starting processes takes cores from the runs going on).
    spare_after_s: float = field(default_factory=lambda: _float("RAYFLOW_SPARE_AFTER_S", 1.0))
    #: Whether a new workflow instance equal to a live one of the same class (same pickled form, same ``verbose``)
    #: serves its runs on that instance's actors instead of a set of its own (``rayflow.runtime.sharing``).
    share_sets: bool = field(default_factory=lambda: _int("RAYFLOW_SHARE_SETS", 1) > 0)
    #: Whether a step's pool grows past the cluster's CPU cores only once the step is known to wait (on I/O) rather
    #: than compute, or its first calls took ``grow_after_s`` without coming back.
    cap_pools_at_cores: bool = field(default_factory=lambda: _int("RAYFLOW_CAP_POOLS_AT_CORES", 1) > 0)
    #: Seconds the first calls of a step of unknown kind may take before its pool grows past the cores.
    grow_after_s: float = field(default_factory=lambda: _float("RAYFLOW_GROW_AFTER_S", 0.5))
    #: Seconds a set stays parked unused before it is stopped.
    park_s: float = field(default_factory=lambda: _float("RAYFLOW_PARK_S", 120.0))
    #: Times one event may be delivered to a step whose actor then dies before its run fails (a poison event).
    max_deliveries: int = field(default_factory=lambda: _int("RAYFLOW_MAX_DELIVERIES", 3))
    #: Seconds between two checkpoints of a journaled run (``Workflow(journal=...)``), after the one taken at its start.
    journal_interval_s: float = field(default_factory=lambda: _float("RAYFLOW_JOURNAL_INTERVAL_S", 1.0))
    #: Times a journaled run is resumed from its last checkpoint after its dispatcher or context actor died.
    journal_recoveries: int = field(default_factory=lambda: _int("RAYFLOW_JOURNAL_RECOVERIES", 3))
    #: Seconds an ``edit_state`` lock may go without renewal before the context actor takes it back (a live
    #: editor renews it every third of this; only a dead holder, or one blocking its event loop, lets it run out).
    state_lock_lease_s: float = field(default_factory=lambda: _float("RAYFLOW_STATE_LOCK_LEASE_S", 300.0))
    #: Seconds a closing workflow waits for its actors to stop before killing them; also what a step actor has,
    #: past a step's timeout or a run's end, to stop an invocation before it is replaced.
    shutdown_grace_s: float = field(default_factory=lambda: _float("RAYFLOW_SHUTDOWN_GRACE_S", 2.0))
    #: CPUs reserved by each step actor (0 lets many pools share a small machine).
    step_num_cpus: float = field(default_factory=lambda: _float("RAYFLOW_STEP_NUM_CPUS", 0.0))
    #: How Ray places step actors over a cluster's nodes: ``SPREAD`` (each new actor to the next node that can hold
    #: it, so a pool's actors run on several nodes) or ``DEFAULT`` (Ray's own: actors that reserve CPUs are packed
    #: on the node that starts them until half its CPUs are taken).
    step_scheduling: str = field(
        default_factory=lambda: os.environ.get("RAYFLOW_STEP_SCHEDULING", "SPREAD").strip().upper()
    )
    #: Ray namespace that rayflow's named actors live in.
    namespace: str = field(default_factory=lambda: os.environ.get("RAYFLOW_NAMESPACE", "rayflow"))
    #: Seconds a model pool replica (embedding, reranking) waits with no request before it exits (0: never).
    model_idle_s: float = field(default_factory=lambda: _float("RAYFLOW_MODEL_IDLE_S", 900.0))
    #: CPUs a model pool replica reserves (0: it computes with threads of its own, and reserving a CPU would
    #: deadlock small clusters where step actors also want one).
    model_num_cpus: float = field(default_factory=lambda: _float("RAYFLOW_MODEL_NUM_CPUS", 0.0))
    #: Threads a model replica computes with (0: the node's cores shared by the pool's replicas).
    model_threads: int = field(default_factory=lambda: _int("RAYFLOW_MODEL_THREADS", 0))
    #: Smallest model call (in inputs) that a replica computes with all its threads; smaller ones use one thread,
    #: since threads spinning over a few short texts only take the cores from the workflow's other actors.
    model_parallel_min_items: int = field(default_factory=lambda: _int("RAYFLOW_MODEL_PARALLEL_MIN_ITEMS", 16))
    #: Milliseconds a model pool request waits for requests of other callers (concurrent runs) to share its model
    #: call; a batch that is full runs at once.
    model_max_wait_ms: float = field(default_factory=lambda: _float("RAYFLOW_MODEL_MAX_WAIT_MS", 5.0))
    #: Recent results a model replica keeps per input (a text's vector), to answer an input it has just computed
    #: without computing it again (0: no cache).
    model_cache_items: int = field(default_factory=lambda: _int("RAYFLOW_MODEL_CACHE_ITEMS", 4096))
    #: Seconds an idle event stream of ``rayflow serve`` goes without a server-sent-events heartbeat comment.
    serve_heartbeat_s: float = field(default_factory=lambda: _float("RAYFLOW_SERVE_HEARTBEAT_S", 25.0))
    #: Finished runs ``rayflow serve`` keeps (their status, result and events); the oldest are forgotten first.
    serve_kept_handlers: int = field(default_factory=lambda: _int("RAYFLOW_SERVE_KEPT_HANDLERS", 1000))
    #: Records of step invocations a run's driver keeps for its trace (``handler.trace()``); the rest are counted
    #: in its statistics only (0: no trace). A verbose workflow, or OpenTelemetry spans, get every record.
    trace_max_slices: int = field(default_factory=lambda: _int("RAYFLOW_TRACE_MAX_SLICES", 10_000))
    #: Whether runs make OpenTelemetry spans when an SDK tracer provider is set (0: never).
    otel: bool = field(default_factory=lambda: _int("RAYFLOW_OTEL", 1) != 0)
    #: Where converted model weights are cached ("" for ``~/.cache/rayflow``).
    cache_dir: str = field(default_factory=lambda: os.environ.get("RAYFLOW_CACHE_DIR", ""))


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
