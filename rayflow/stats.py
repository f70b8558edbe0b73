"""What ran: the figures of a run's steps (``await handler.stats()``) or of a workflow instance's runs
(``await workflow.stats()``), and a short text table of them for a terminal (``format_stats``).

Each figure is counted by the dispatcher from what the step actors measured, O(1) per step invocation; latency
percentiles come from a bounded logarithmic sketch, within 1% of a latency actually measured. See
``rayflow.core.stats`` for exactly what each count counts.
"""

from __future__ import annotations

from rayflow.core.stats import StepStats, WorkflowStats, format_stats

__all__ = ["StepStats", "WorkflowStats", "format_stats"]
