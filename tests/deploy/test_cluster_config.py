"""The deployment files (cluster.yaml, deploy/) checked with Ray's own code, with no cloud and no Kubernetes.

cluster.yaml goes through what `ray up` does to a config before it talks to the cloud: ``prepare_config`` (Ray's
AWS defaults merged under ours, setup commands merged, per-type worker bounds filled in) then ``validate_config``
(Ray's JSON schema and its cross-field checks). The provider's own steps after that, instance-type lookup and the
IAM / key pair / subnet bootstrap, call AWS and are not run here. The KubeRay RayCluster goes through the translation
Ray's autoscaler applies to a RayCluster in a pod (``_derive_autoscaling_config_from_ray_cr``, which validates too).
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.autoscaler._private.util import prepare_config, validate_config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Our image names: rayflow:<rayflow version>-ray<Ray version>-<cpu|gpu>, with or without a registry in front.
IMAGE = re.compile(r"(?:.+/)?rayflow:(?P<rayflow>[^-]+)-ray(?P<ray>[\d.]+)-(?P<variant>cpu|gpu)")


def load(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def ray_requirement() -> Requirement:
    reqs = [Requirement(r) for r in pyproject()["project"]["dependencies"]]
    return next(r for r in reqs if r.name == "ray")


def readme_torch_pin() -> str:
    pins = set(re.findall(r"torch==([\w.+]+)", (ROOT / "README.md").read_text()))
    assert len(pins) == 1, f"README pins torch to {pins}; expected one version"
    return pins.pop()


def prepared(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as `ray up` has it just before the provider's cloud calls, validated as `ray up` does."""
    config = prepare_config(copy.deepcopy(config))
    validate_config(config)
    return config


def setup_commands_of(config: dict[str, Any], node_type: str) -> list[str]:
    """What a node of ``node_type`` runs to set up, in a prepared config (as Ray's updater and autoscaler pick it).

    The head runs ``head_setup_commands`` (with ``setup_commands`` merged in front by prepare_config). A worker
    runs its node type's own ``worker_setup_commands`` when it has them (they replace the merged list), else the
    merged ``worker_setup_commands``.
    """
    if node_type == config["head_node_type"]:
        return list(config["head_setup_commands"])
    own = config["available_node_types"][node_type].get("worker_setup_commands")
    return list(own if own is not None else config["worker_setup_commands"])


def pip_installs(commands: list[str]) -> list[list[str]]:
    """The arguments of each ``pip install`` among ``commands``, in order."""
    out = []
    for command in commands:
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:
            out.append(words[2:])
    return out


def installs_rayflow(args: list[str], mounts: dict[str, str]) -> bool:
    """``pip install`` of this checkout with the rag extra, from where file_mounts copies the repository root."""
    checkout = {remote.rstrip("/") for remote, local in mounts.items() if (ROOT / local).resolve() == ROOT}
    return any(a.endswith("[rag]") and a[: -len("[rag]")].replace("$HOME/", "~/") in checkout for a in args)


def image_version(image: str) -> str:
    repo, _, tag = image.rpartition(":")
    assert repo == "rayproject/ray" and tag, image
    return tag.split("-")[0]


# cluster.yaml


def test_cluster_yaml_passes_ray_up_preparation_and_validation() -> None:
    config = prepared(load("cluster.yaml"))
    assert config["provider"]["type"] == "aws"
    assert set(config["available_node_types"]) == {"head", "cpu", "gpu"}
    head_start = " ".join(config["head_start_ray_commands"])
    # Without it the head runs no autoscaler and the min/max bounds below mean nothing.
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start


def _drop_gpu_resources(c: dict[str, Any]) -> None:
    del c["available_node_types"]["gpu"]["resources"]


def _max_workers_as_string(c: dict[str, Any]) -> None:
    c["max_workers"] = "10"


def _type_max_workers_as_string(c: dict[str, Any]) -> None:
    c["available_node_types"]["cpu"]["max_workers"] = "8"


def _fractional_gpu_resource(c: dict[str, Any]) -> None:
    c["available_node_types"]["gpu"]["resources"]["GPU"] = 0.5  # fractions are for actors, not for nodes


def _misspelt_node_type_key(c: dict[str, Any]) -> None:
    c["available_node_types"]["cpu"]["min_worker"] = 1


@pytest.mark.parametrize(
    "breaks",
    [
        _drop_gpu_resources,
        _max_workers_as_string,
        _type_max_workers_as_string,
        _fractional_gpu_resource,
        _misspelt_node_type_key,
    ],
)
def test_ray_schema_rejects_a_broken_copy(breaks: Callable[[dict[str, Any]], None]) -> None:
    config = load("cluster.yaml")
    breaks(config)
    with pytest.raises(jsonschema.ValidationError):
        prepared(config)


def test_ray_rejects_min_workers_beyond_the_global_max() -> None:
    config = load("cluster.yaml")
    config["max_workers"] = 0
    with pytest.raises(ValueError, match="sum of `min_workers`"):
        prepared(config)


def test_ray_rejects_an_unknown_head_node_type() -> None:
    config = load("cluster.yaml")
    config["head_node_type"] = "ray.head.default"
    with pytest.raises(ValueError, match="head_node_type"):
        prepared(config)


def test_a_gpu_node_type_declares_gpus_and_gets_cuda() -> None:
    config = prepared(load("cluster.yaml"))
    gpu_types = {name: t for name, t in config["available_node_types"].items() if t["resources"].get("GPU", 0) >= 1}
    assert list(gpu_types) == ["gpu"], gpu_types
    gpu = gpu_types["gpu"]
    assert gpu["max_workers"] >= 1
    assert gpu["docker"]["worker_image"].endswith("-gpu")
    torch = [args for args in pip_installs(setup_commands_of(config, "gpu")) if any("torch" in a for a in args)]
    assert torch and not any(CPU_TORCH_INDEX in args for args in torch), f"GPU nodes get the CPU torch: {torch}"


def test_every_node_type_installs_rayflow_after_its_torch() -> None:
    config = prepared(load("cluster.yaml"))
    pin = f"torch=={readme_torch_pin()}"
    for name, node_type in config["available_node_types"].items():
        installs = pip_installs(setup_commands_of(config, name))
        rayflow = [i for i, args in enumerate(installs) if installs_rayflow(args, config["file_mounts"])]
        torch = [i for i, args in enumerate(installs) if pin in args]
        assert rayflow, f"node type {name!r} never installs rayflow[rag]: {installs}"
        assert torch and torch[0] < rayflow[0], f"node type {name!r}: no {pin} before rayflow: {installs}"
        cpu_only = node_type["resources"].get("GPU", 0) == 0
        assert (CPU_TORCH_INDEX in installs[torch[0]]) == cpu_only, f"node type {name!r}: {installs[torch[0]]}"


def test_autoscaling_bounds_are_sane() -> None:
    config = prepared(load("cluster.yaml"))
    types = config["available_node_types"]
    for name, t in types.items():
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"], (name, t)
    assert types[config["head_node_type"]]["max_workers"] == 0
    assert sum(t["min_workers"] for t in types.values()) <= config["max_workers"]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert any(t["min_workers"] >= 1 and "GPU" not in t["resources"] for t in workers), "no CPU worker stays up"


def test_cluster_images_are_the_installed_ray() -> None:
    config = prepared(load("cluster.yaml"))
    images = [config["docker"]["image"]] + [
        t["docker"]["worker_image"] for t in config["available_node_types"].values() if "docker" in t
    ]
    for image in images:
        assert image_version(image) == ray.__version__, image
    assert Version(ray.__version__) in ray_requirement().specifier


# KubeRay: deploy/raycluster.yaml, deploy/rayjob.yaml and the image they run (deploy/Dockerfile)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def raycluster_spec_problems(spec: dict[str, Any]) -> list[str]:
    """What a RayCluster spec lacks of the fields KubeRay requires and rayflow relies on (empty when fine)."""
    problems = []
    head = spec.get("headGroupSpec", {})
    if not _string_map(head.get("rayStartParams")):
        problems.append("headGroupSpec.rayStartParams: a map of strings is required")
    groups = [("headGroupSpec", head)]
    workers = spec.get("workerGroupSpecs") or []
    if not workers:
        problems.append("workerGroupSpecs: none")
    names = [w.get("groupName") for w in workers]
    if len(set(names)) != len(names):
        problems.append(f"workerGroupSpecs: group names repeat: {names}")
    for w in workers:
        where = f"workerGroupSpecs[{w.get('groupName')}]"
        groups.append((where, w))
        if not isinstance(w.get("groupName"), str):
            problems.append(f"{where}.groupName: missing")
        bounds = [w.get(k) for k in ("minReplicas", "replicas", "maxReplicas")]
        if not all(isinstance(b, int) for b in bounds) or not 0 <= bounds[0] <= bounds[1] <= bounds[2]:
            problems.append(f"{where}: need integers 0 <= minReplicas <= replicas <= maxReplicas, got {bounds}")
        if not _string_map(w.get("rayStartParams")):
            problems.append(f"{where}.rayStartParams: a map of strings is required")
    for where, group in groups:
        containers = group.get("template", {}).get("spec", {}).get("containers") or [{}]
        if not isinstance(containers[0].get("image"), str):
            problems.append(f"{where}.template.spec.containers[0].image: missing")
    if not any(gpu_limit(w) >= 1 for w in workers):
        problems.append("workerGroupSpecs: no group with an nvidia.com/gpu limit")
    return problems


def gpu_limit(group: dict[str, Any]) -> int:
    container = group.get("template", {}).get("spec", {}).get("containers", [{}])[0]
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def groups(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every group of a RayCluster spec by name, the head group as "head"."""
    return {"head": spec["headGroupSpec"], **{w["groupName"]: w for w in spec["workerGroupSpecs"]}}


def dockerfile() -> str:
    return (ROOT / "deploy" / "Dockerfile").read_text()


def test_raycluster_has_what_kuberay_requires() -> None:
    cluster = load("deploy/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert raycluster_spec_problems(cluster["spec"]) == []
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    limits = {w["groupName"]: gpu_limit(w) for w in cluster["spec"]["workerGroupSpecs"]}
    assert limits == {"cpu": 0, "gpu": 1}


def _without_max_replicas(s: dict[str, Any]) -> None:
    del s["workerGroupSpecs"][0]["maxReplicas"]


def _replicas_above_max(s: dict[str, Any]) -> None:
    s["workerGroupSpecs"][0]["replicas"] = s["workerGroupSpecs"][0]["maxReplicas"] + 1


def _numeric_start_param(s: dict[str, Any]) -> None:
    s["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


def _no_gpu_limit(s: dict[str, Any]) -> None:
    for w in s["workerGroupSpecs"]:
        w["template"]["spec"]["containers"][0]["resources"]["limits"].pop("nvidia.com/gpu", None)


def _no_head_image(s: dict[str, Any]) -> None:
    del s["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize(
    "breaks", [_without_max_replicas, _replicas_above_max, _numeric_start_param, _no_gpu_limit, _no_head_image]
)
def test_raycluster_check_catches_a_broken_copy(breaks: Callable[[dict[str, Any]], None]) -> None:
    spec = load("deploy/raycluster.yaml")["spec"]
    breaks(spec)
    assert raycluster_spec_problems(spec)


def test_raycluster_as_ray_autoscaler_reads_it() -> None:
    cluster = load("deploy/raycluster.yaml")
    cluster["metadata"]["namespace"] = "default"  # set by `kubectl apply -n`; the manifest leaves it open
    config = _derive_autoscaling_config_from_ray_cr(cluster)
    types = config["available_node_types"]
    assert types["headgroup"]["resources"]["CPU"] == 0
    assert types["gpu"]["resources"]["GPU"] == 1 and "GPU" not in types["cpu"]["resources"]
    assert (types["cpu"]["min_workers"], types["gpu"]["min_workers"]) == (1, 0)


def test_rayjob_runs_the_example_on_the_raycluster_spec() -> None:
    job = load("deploy/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert "rayClusterSpec" in spec or "clusterSelector" in spec
    assert spec["rayClusterSpec"] == load("deploy/raycluster.yaml")["spec"], "rayjob.yaml drifted from raycluster.yaml"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    config_source = (ROOT / "rayflow" / "config.py").read_text()
    for name, value in env.items():
        assert isinstance(value, str) and f'"{name}"' in config_source, f"{name}={value!r} is no rayflow setting"


def test_rayjob_entrypoint_runs_a_script_of_this_repository() -> None:
    words = shlex.split(load("deploy/rayjob.yaml")["spec"]["entrypoint"])
    assert words[0] == "python", words
    workdir = re.search(r"^WORKDIR (\S+)$", dockerfile(), re.M)
    assert workdir, "deploy/Dockerfile names no WORKDIR for the repository"
    script = Path(words[1]).relative_to(workdir.group(1))
    assert (ROOT / script).is_file(), f"{script} is not in the repository"
    copied = re.search(rf"^COPY .*\s{script.parts[0]} {workdir.group(1)}/{script.parts[0]}$", dockerfile(), re.M)
    assert copied, f"deploy/Dockerfile does not copy {script.parts[0]}/ into {workdir.group(1)}"


def test_kuberay_images_are_the_installed_ray_and_this_rayflow() -> None:
    dockerfile_ray = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile(), re.M)
    assert dockerfile_ray and dockerfile_ray.group(1) == ray.__version__
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py3\d+-\$\{VARIANT\}$", dockerfile(), re.M)
    assert re.search(rf"^ARG TORCH_VERSION={re.escape(readme_torch_pin())}$", dockerfile(), re.M)
    for name in ("deploy/raycluster.yaml", "deploy/rayjob.yaml"):
        doc = load(name)
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        assert spec["rayVersion"] == ray.__version__, name
        for group_name, group in groups(spec).items():
            image = group["template"]["spec"]["containers"][0]["image"]
            m = IMAGE.fullmatch(image)
            assert m, f"{name} {group_name}: {image} is not a rayflow:<version>-ray<version>-<cpu|gpu> image"
            assert m["ray"] == ray.__version__ and m["rayflow"] == pyproject()["project"]["version"], image
            assert m["variant"] == ("gpu" if gpu_limit(group) else "cpu"), f"{name} {group_name}: {image}"
    assert Version(ray.__version__) in ray_requirement().specifier


def test_documented_example_scripts_exist() -> None:
    texts = [ROOT / "cluster.yaml", ROOT / "README.md", *sorted((ROOT / "deploy").iterdir())]
    mentioned = {m for path in texts for m in re.findall(r"\bexamples/[\w/]+\.py\b", path.read_text())}
    assert "examples/rag_pipeline.py" in mentioned
    assert [m for m in sorted(mentioned) if not (ROOT / m).is_file()] == []
