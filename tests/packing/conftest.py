"""Small trace files in the Alibaba v2023 schema, written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model"
POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,"
    "qos,pod_phase,creation_time,deletion_time,scheduled_time"
)
POD_HEADER_SHORT = "name,cpu_milli,memory_mib,num_gpu,gpu_milli"

Writer = Callable[..., Path]


def _write(path: Path, header: str, rows: Sequence[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def write_nodes(tmp_path: Path) -> Writer:
    def write(rows: Sequence[str], name: str = "nodes.csv", header: str = NODE_HEADER) -> Path:
        return _write(tmp_path / name, header, rows)

    return write


@pytest.fixture
def write_pods(tmp_path: Path) -> Writer:
    def write(rows: Sequence[str], name: str = "pods.csv", header: str = POD_HEADER) -> Path:
        return _write(tmp_path / name, header, rows)

    return write


def pod_row(name: str, cpu: int, mem: int, num_gpu: int, gpu_milli: int, spec: str = "") -> str:
    """A row of the full 11-column schema."""
    return f"{name},{cpu},{mem},{num_gpu},{gpu_milli},{spec},LS,Running,0,100,0"


@pytest.fixture
def small_trace(write_nodes: Writer, write_pods: Writer) -> tuple[Path, Path]:
    """A 3-node cluster (7 GPUs, two models) and 24 mixed pods."""
    nodes = write_nodes(
        [
            "node-a,32000,131072,4,V100M16",
            "node-b,16000,65536,2,T4",
            "node-c,8000,32768,1,T4",
        ]
    )
    rows = []
    for i in range(24):
        kind = i % 6
        if kind == 0:
            rows.append(pod_row(f"pod-{i:02d}", 4000, 8192, 1, 1000))
        elif kind == 1:
            rows.append(pod_row(f"pod-{i:02d}", 2000, 4096, 1, 500))
        elif kind == 2:
            rows.append(pod_row(f"pod-{i:02d}", 1000, 2048, 1, 250, "T4"))
        elif kind == 3:
            rows.append(pod_row(f"pod-{i:02d}", 3000, 4096, 0, 0))
        elif kind == 4:
            rows.append(pod_row(f"pod-{i:02d}", 8000, 16384, 2, 1000))
        else:
            rows.append(pod_row(f"pod-{i:02d}", 2000, 4096, 1, 750, "V100M16|T4"))
    return nodes, write_pods(rows)
