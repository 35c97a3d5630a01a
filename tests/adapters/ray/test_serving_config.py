"""What ``ServeRunner`` asks of Serve and how it reads Serve's answers, without Ray.

A replica's application config pins it (one bundle holding a sliver of its node's resource,
``STRICT_PACK``, exactly the CPUs, GPUs and memory given, the core's GPU indices in
``CUDA_VISIBLE_DEVICES`` with Ray told not to overwrite them); the application details from
``get_serve_details()`` become replica states, and an application that is DEPLOYING only
because the last ``deploy_apps`` listed it again stays running (its replica serves on). A config read back
(adopting after a restart) gives the same replica.
"""

from __future__ import annotations

from typing import Any

from gpupool.adapters.ray.serving import (
    NOSET_CUDA,
    ReplicaSpec,
    ReplicaState,
    _Replica,
    _spec_from_config,
    _status,
)


def spec(**kw: Any) -> ReplicaSpec:
    base: dict[str, Any] = {
        "deployment": "iris",
        "member": "m3",
        "import_path": "gpupool.serving_demo:app",
        "node": "t4-1",
        "ingress": "Demo",
        "gpus": 0.25,
        "cpus": 2,
        "memory": 1 << 30,
        "gpu_ids": (1,),
        "revision": 2,
    }
    return ReplicaSpec(**{**base, **kw})


def test_the_application_config_pins_the_replica_with_the_resources_given() -> None:
    cfg = spec(env={"K": "V"}, working_dir="/srv/app").app_config()
    assert cfg["name"] == "gp.iris.r2.m3" and cfg["route_prefix"] == "/_gp/iris/r2/m3"
    (dep,) = cfg["deployments"]
    assert dep["name"] == "Demo" and dep["num_replicas"] == 1
    assert dep["placement_group_bundles"] == [
        {"gpupool.node.t4-1": 0.001, "CPU": 2, "GPU": 0.25, "memory": 1 << 30}
    ]
    assert dep["placement_group_strategy"] == "STRICT_PACK"
    assert dep["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 0.25, "memory": 1 << 30}
    env = cfg["runtime_env"]["env_vars"]
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env[NOSET_CUDA] == "1" and env["K"] == "V"
    assert (env["GPUPOOL_NODE"], env["GPUPOOL_MEMBER"], env["GPUPOOL_WORKLOAD_ID"]) == ("t4-1", "m3", "iris")
    assert cfg["runtime_env"]["working_dir"] == "local:///srv/app"


def test_a_cpu_replica_asks_for_no_gpu_and_leaves_cuda_alone() -> None:
    cfg = spec(gpus=0, gpu_ids=(), memory=0).app_config()
    (dep,) = cfg["deployments"]
    assert dep["placement_group_bundles"] == [{"gpupool.node.t4-1": 0.001, "CPU": 2}]
    assert "CUDA_VISIBLE_DEVICES" not in cfg["runtime_env"]["env_vars"]
    assert "working_dir" not in cfg["runtime_env"]


def app(status: str, replica: str | None = None, message: str = "", dep_message: str = "") -> dict[str, Any]:
    replicas = [{"state": replica}] if replica else []
    return {
        "status": status,
        "message": message,
        "deployments": {"Demo": {"message": dep_message, "replicas": replicas}},
    }


def test_serve_application_details_become_replica_states() -> None:
    rep = _Replica(spec())
    assert _status(rep, None).state == ReplicaState.STARTING
    assert _status(rep, app("DEPLOYING", "STARTING")).state == ReplicaState.STARTING
    assert _status(rep, app("RUNNING", "RUNNING")).state == ReplicaState.RUNNING
    # Re-listed by the last deploy_apps: DEPLOYING for a moment while its replica serves on.
    assert _status(rep, app("DEPLOYING", "RUNNING")).state == ReplicaState.RUNNING
    failed = _status(rep, app("DEPLOY_FAILED", message="ModuleNotFoundError: No module named 'x'"))
    assert failed.state == ReplicaState.FAILED and "No module named 'x'" in failed.message
    unhealthy = _status(rep, app("UNHEALTHY", "RUNNING", dep_message="health check failed"))
    assert unhealthy.state == ReplicaState.FAILED and unhealthy.message == "health check failed"
    rep.seen = True  # listed once, then gone without remove_replica
    lost = _status(rep, None)
    assert lost.state == ReplicaState.FAILED and "no longer has the application gp.iris.r2.m3" in lost.message
    rep.removing_since = 1.0
    assert _status(rep, app("RUNNING", "RUNNING")).state == ReplicaState.DRAINING
    rep.gone = True
    assert _status(rep, None).state == ReplicaState.GONE


def test_a_config_read_back_gives_the_same_replica() -> None:
    for one in (spec(env={"K": "V"}, working_dir="/srv/app"), spec(gpus=0, gpu_ids=(), memory=0)):
        assert _spec_from_config(one.app_config()) == one
    kept = spec().app_config()
    del kept["deployments"][0]["max_constructor_retry_count"]  # Serve's details leave it out
    assert _spec_from_config(kept) == spec()
    assert _spec_from_config({"name": "someone-elses", "import_path": "a:b", "deployments": []}) is None
