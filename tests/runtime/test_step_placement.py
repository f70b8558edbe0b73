"""Where step actors go on one node: ``@step(num_gpus=...)`` reserves GPUs (the session's Ray declares two logical
ones), a GPU step is never run on another step's actor, and the actor set's control actors stay on the driver's
node. The multi-node cases are in ``tests/cluster/test_multi_node.py``."""

from __future__ import annotations

import pytest
import ray

from rayflow import Event, StartEvent, StopEvent, Workflow, step
from rayflow.errors import WorkflowValidationError
from rayflow.runtime.placement import Placement
from rayflow.spec import WorkflowSpec


class Middle(Event):
    pass


class OnGpu(Workflow):
    @step
    async def begin(self, ev: StartEvent) -> Middle:
        return Middle()

    @step(num_gpus=0.5)
    async def gpu(self, ev: Middle) -> StopEvent:
        context = ray.get_runtime_context()
        return StopEvent(result=(context.get_actor_name(), ray.get_gpu_ids(), context.get_node_id()))


@pytest.mark.usefixtures("ray_env")
async def test_a_gpu_step_runs_on_its_own_actor_holding_a_gpu() -> None:
    async with OnGpu(timeout=60) as wf:
        for _ in range(3):  # later runs would chain ``gpu`` onto ``begin``'s actor, were it lendable
            actor, gpus, node = await wf.run()
            assert actor.endswith(".gpu.0")
            assert len(gpus) == 1
            assert node == ray.get_runtime_context().get_node_id()


def test_a_gpu_step_is_not_lent_and_its_shape_names_its_gpus() -> None:
    from rayflow.runtime.park import shape_of

    routes = {r.name: r for r in WorkflowSpec.of(OnGpu).routes}
    assert routes["gpu"].num_gpus == 0.5 and not routes["gpu"].lendable
    assert routes["begin"].num_gpus == 0.0 and routes["begin"].lendable
    assert dict((name, gpus) for name, _, gpus in shape_of(list(routes.values()))) == {"begin": 0.0, "gpu": 0.5}


@pytest.mark.parametrize("bad", [-1, "1", True])
def test_num_gpus_must_be_a_number_of_zero_or_more(bad: object) -> None:
    with pytest.raises(WorkflowValidationError, match="num_gpus must be a number of GPUs"):

        @step(num_gpus=bad)  # type: ignore[arg-type]
        async def gpu(self: object, ev: Middle) -> StopEvent:
            return StopEvent()


def test_an_unknown_scheduling_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="RAYFLOW_STEP_SCHEDULING must be one of SPREAD, DEFAULT"):
        Placement(num_cpus=0, num_gpus=0, scheduling="PACK")
