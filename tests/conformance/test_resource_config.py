"""Conformance: ``Annotated[Model, ResourceConfig(file, path_selector)]``, and resources built from other resources.

A config file is written to ``tmp_path`` and named by its absolute path (on rayflow, steps run in actors whose
working directory may differ), except in the test of a relative path. Factories count the objects they build in a
file of ``tmp_path``; steps return what they observed of the objects they got.
"""

import json
import os
from typing import Annotated

import pytest
from pydantic import BaseModel


class Database(BaseModel):
    host: str
    port: int


class Pool:
    """A stand-in for a heavy object (a connection pool)."""


class Client:
    """Built from a config and another resource."""

    def __init__(self, settings: Database, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool


SETTINGS = {"services": {"db": {"host": "db.internal", "port": 5432}, "cache": 3}, "name": "demo"}


def write_settings(path) -> str:
    path.write_text(json.dumps(SETTINGS))
    return str(path)


def counting(calls_file, make):
    """``make`` wrapped to append a line to ``calls_file`` for each object it builds."""

    def build():
        with open(calls_file, "a") as out:
            out.write("built\n")
        return make()

    return build


def built(calls_file) -> int:
    return len(calls_file.read_text().splitlines()) if calls_file.exists() else 0


def config_workflow(engine, config):
    class Configured(engine.Workflow):
        @engine.step
        async def connect(self, ev: engine.StartEvent, db: Annotated[Database, config]) -> engine.StopEvent:
            return engine.StopEvent(result=(type(db).__name__, db.host, db.port))

    return Configured()


async def test_a_config_resource_is_the_model_validated_from_the_whole_json_file(engine, tmp_path):
    path = tmp_path / "db.json"
    path.write_text(json.dumps({"host": "localhost", "port": 5433}))
    config = engine.resource.ResourceConfig(str(path))
    assert await config_workflow(engine, config).run() == ("Database", "localhost", 5433)


async def test_a_path_selector_picks_a_nested_object_by_dotted_keys(engine, tmp_path):
    path = write_settings(tmp_path / "settings.json")
    config = engine.resource.ResourceConfig(path, path_selector="services.db", label="DB", description="where")
    assert await config_workflow(engine, config).run() == ("Database", "db.internal", 5432)


async def test_a_relative_config_path_names_a_file_in_the_current_directory(engine, tmp_path, monkeypatch):
    write_settings(tmp_path / "settings.json")
    monkeypatch.chdir(tmp_path)
    config = engine.resource.ResourceConfig("settings.json", path_selector="services.db")
    assert await config_workflow(engine, config).run() == ("Database", "db.internal", 5432)


@pytest.mark.parametrize("name", ["settings.yaml", "settings.JSON", "settings"])
def test_a_config_file_not_named_json_is_refused_at_once(api, name):
    with pytest.raises(ValueError, match=r"^Only JSON files can be used to load Pydantic-based resources\.$"):
        api.resource.ResourceConfig(name)


@pytest.mark.parametrize(
    ("selector", "at", "found"),
    [
        ("services.queue", "services.queue", "NoneType"),
        ("services.cache", "services.cache", "int"),
        ("name.first", "name", "str"),
    ],
)
async def test_a_selector_that_does_not_reach_an_object_refuses_the_run(engine, tmp_path, selector, at, found):
    path = write_settings(tmp_path / "settings.json")
    workflow = config_workflow(engine, engine.resource.ResourceConfig(path, path_selector=selector))
    with pytest.raises(engine.WorkflowValidationError) as refused:
        await workflow.run()
    assert str(refused.value) == (
        "Resource config validation failed:\n"
        f"  - In step 'connect', parameter 'db': Expected dictionary for configuration from {path} "
        f"at path {at}, got: <class '{found}'>"
    )


async def test_a_missing_config_file_or_an_invalid_model_refuses_the_run(engine, tmp_path):
    missing = str(tmp_path / "missing.json")
    with pytest.raises(engine.WorkflowValidationError) as refused:
        await config_workflow(engine, engine.resource.ResourceConfig(missing)).run()
    assert (
        str(refused.value)
        == f"Resource config validation failed:\n  - In step 'connect', parameter 'db': No such file: {missing}"
    )

    path = write_settings(tmp_path / "settings.json")
    with pytest.raises(engine.WorkflowValidationError, match=r"(?s)parameter 'db': .*validation error.*host"):
        await config_workflow(engine, engine.resource.ResourceConfig(path, path_selector="services")).run()


async def test_a_config_resource_is_read_once_and_the_same_model_reused(engine, tmp_path):
    path = write_settings(tmp_path / "settings.json")

    class Tick(engine.Event):
        ids: list[int]

    class Ticking(engine.Workflow):
        @engine.step(num_workers=1)
        async def tick(
            self,
            ev: engine.StartEvent | Tick,
            db: Annotated[Database, engine.resource.ResourceConfig(path, path_selector="services.db")],
        ) -> Tick | engine.StopEvent:
            ids = [*(ev.ids if isinstance(ev, Tick) else []), id(db)]
            if len(ids) == 2:  # the file changes: a cached model is not read again
                with open(path, "w") as out:
                    json.dump({"services": {"db": {"host": "elsewhere", "port": 1}}}, out)
            return Tick(ids=ids) if len(ids) < 3 else engine.StopEvent(result=(len(set(ids)), db.host))

    assert await Ticking().run() == (1, "db.internal")


async def test_a_factory_receives_the_config_and_resources_it_declares_each_built_once(engine, tmp_path):
    path = write_settings(tmp_path / "settings.json")
    pools, clients = tmp_path / "pools", tmp_path / "clients"
    make_pool = counting(str(pools), Pool)
    count_client = counting(str(clients), lambda: None)

    def make_client(
        settings: Annotated[Database, engine.resource.ResourceConfig(path, path_selector="services.db")],
        pool: Annotated[Pool, engine.resource.Resource(make_pool)],
    ) -> Client:
        count_client()
        return Client(settings, pool)

    class Tick(engine.Event):
        n: int

    class Wired(engine.Workflow):
        @engine.step(num_workers=1)
        async def query(
            self,
            ev: engine.StartEvent | Tick,
            client: Annotated[Client, engine.resource.Resource(make_client)],
            pool: Annotated[Pool, engine.resource.Resource(make_pool)],
        ) -> Tick | engine.StopEvent:
            n = ev.n + 1 if isinstance(ev, Tick) else 1
            if n < 3:
                return Tick(n=n)
            return engine.StopEvent(result=(client.settings.host, client.settings.port, client.pool is pool))

    assert await Wired().run() == ("db.internal", 5432, True)
    assert (built(pools), built(clients)) == (1, 1)


async def test_an_uncached_resource_is_built_once_per_call_however_many_need_it(engine, tmp_path):
    pools = tmp_path / "pools"
    make_pool = counting(str(pools), Pool)

    def make_client(pool: Annotated[Pool, engine.resource.Resource(make_pool, cache=False)]) -> Client:
        return Client(Database(host="h", port=1), pool)

    class Tick(engine.Event):
        shared: list[bool]

    class Fresh(engine.Workflow):
        @engine.step(num_workers=1)
        async def query(
            self,
            ev: engine.StartEvent | Tick,
            client: Annotated[Client, engine.resource.Resource(make_client, cache=False)],
            pool: Annotated[Pool, engine.resource.Resource(make_pool, cache=False)],
        ) -> Tick | engine.StopEvent:
            shared = [*(ev.shared if isinstance(ev, Tick) else []), client.pool is pool]
            return Tick(shared=shared) if len(shared) < 2 else engine.StopEvent(result=shared)

    assert await Fresh().run() == [True, True]
    assert built(pools) == 2


async def test_a_factory_config_that_cannot_load_refuses_the_run_naming_the_chain(engine, tmp_path):
    path = write_settings(tmp_path / "settings.json")

    def make_client(
        settings: Annotated[Database, engine.resource.ResourceConfig(path, path_selector="nope")],
    ) -> Client:
        return Client(settings, Pool())

    class Wired(engine.Workflow):
        @engine.step
        async def query(
            self, ev: engine.StartEvent, client: Annotated[Client, engine.resource.Resource(make_client)]
        ) -> engine.StopEvent:
            return engine.StopEvent(result=client.settings.host)

    with pytest.raises(engine.WorkflowValidationError) as refused:
        await Wired().run()
    chain = f"{make_client.__qualname__} -> {path}.nope"
    assert str(refused.value) == (
        f"Resource config validation failed:\n  - In step 'query', parameter 'client' ({chain}): "
        f"Expected dictionary for configuration from {path} at path nope, got: <class 'NoneType'>"
    )
    assert os.path.isabs(path)


def test_a_config_descriptor_keeps_its_file_selector_label_and_description(api, tmp_path):
    path = write_settings(tmp_path / "settings.json")
    config = api.resource.ResourceConfig(path, path_selector="services.db", label="DB", description="where")
    assert isinstance(config, api.resource.ResourceDescriptor)
    assert (config.config_file, config.path_selector, config.label, config.description, config.cache) == (
        path,
        "services.db",
        "DB",
        "where",
        True,
    )
