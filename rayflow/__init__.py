"""rayflow: LlamaIndex-Workflows-compatible event-driven workflows, run as an actor system on Ray.

``from rayflow import Workflow, step, Event, Context, StartEvent, StopEvent`` replaces
``from llama_index.core.workflow import ...``; each step runs on a pool of Ray actors.
"""

from rayflow.context import Context
from rayflow.decorators import catch_error, step
from rayflow.errors import (
    JournalError,
    WorkflowActorDiedError,
    WorkflowCancelledByUser,
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from rayflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from rayflow.handler import WorkflowHandler
from rayflow.journal import Journal
from rayflow.resource import Resource, ResourceConfig
from rayflow.retry_policy import ConstantDelayRetryPolicy, ExponentialBackoffRetryPolicy, RetryPolicy
from rayflow.runtime.cluster import init
from rayflow.workflow import Workflow

__all__ = [
    "ConstantDelayRetryPolicy",
    "Context",
    "Event",
    "ExponentialBackoffRetryPolicy",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "Journal",
    "JournalError",
    "Resource",
    "ResourceConfig",
    "RetryPolicy",
    "StartEvent",
    "StepFailedEvent",
    "StopEvent",
    "Workflow",
    "WorkflowActorDiedError",
    "WorkflowCancelledByUser",
    "WorkflowCancelledEvent",
    "WorkflowConfigurationError",
    "WorkflowFailedEvent",
    "WorkflowHandler",
    "WorkflowRuntimeError",
    "WorkflowStuckError",
    "WorkflowTimedOutEvent",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "__version__",
    "catch_error",
    "init",
    "step",
]

__version__ = "0.1.0"
