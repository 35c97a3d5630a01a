"""A real local Ray cluster for the Ray adapter's tests, started once per session and always stopped.

Three worker nodes (h100-0, h100-1: 4 H100 each; a100-0: 4 A100) and a head without GPUs.
Each test gets a fresh ``RayExecutor`` (sharing the process's Ray connection).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.adapters.ray.cluster import LocalRayCluster
from gpupool.adapters.ray.executor import RayExecutor

SPEC = "2xH100:4,1xA100:4"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    c = LocalRayCluster(SPEC, tmp_path_factory.mktemp("ray-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gpupool-data")


@pytest.fixture
def executor(cluster: LocalRayCluster, data_dir: Path) -> Iterator[RayExecutor]:
    assert cluster.address is not None
    ex = RayExecutor(cluster.address, data_dir, term_timeout=2.0, node_poll_interval=0.5)
    yield ex
