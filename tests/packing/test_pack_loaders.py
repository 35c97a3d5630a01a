"""Loaders of the Alibaba GPU trace v2023: both pod schemas, bad rows, skipping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpupool.packing.alibaba import LoadError, load_nodes, load_pods, normalise_gpu_spec

from .conftest import POD_HEADER_SHORT, Writer, pod_row


def test_nodes_load_as_columns(write_nodes: Writer) -> None:
    path = write_nodes(["n1,64000,262144,2,P100", "n2,96000,393216,8,G2"])
    nodes = load_nodes(path)
    assert nodes.names == ("n1", "n2")
    assert nodes.cpu_milli.tolist() == [64000, 96000]
    assert nodes.memory_mib.tolist() == [262144, 393216]
    assert nodes.gpus.tolist() == [2, 8]
    assert nodes.models == ("P100", "G2")
    assert nodes.total_gpus == 10
    assert nodes.skipped == ()


def test_full_schema_pods(write_pods: Writer) -> None:
    path = write_pods(
        [
            pod_row("p0", 12000, 16384, 1, 1000),
            pod_row("p1", 6000, 12288, 1, 460, "V100M16|V100M32"),
            pod_row("p2", 88000, 327680, 8, 1000),
            pod_row("p3", 4000, 8192, 0, 0),
        ]
    )
    pods = load_pods(path)
    assert len(pods) == 4
    assert pods.num_gpu.tolist() == [1, 1, 8, 0]
    assert pods.gpu_milli.tolist() == [1000, 460, 1000, 0]
    assert pods.gpu_milli_total.tolist() == [1000, 460, 8000, 0]
    assert pods.gpu_spec == ("", "V100M16|V100M32", "", "")


def test_five_column_schema(write_pods: Writer) -> None:
    path = write_pods(["p0,12000,16384,1,1000", "p1,6000,12288,2,1000"], header=POD_HEADER_SHORT)
    pods = load_pods(path)
    assert pods.names == ("p0", "p1")
    assert pods.gpu_spec == ("", "")
    assert pods.gpu_milli_total.tolist() == [1000, 2000]


def test_gpu_spec_normalised() -> None:
    assert normalise_gpu_spec("nan") == ""
    assert normalise_gpu_spec("") == ""
    assert normalise_gpu_spec("V100M16||V100M32|") == "V100M16|V100M32"


def test_spec_of_cpu_only_pod_is_ignored(write_pods: Writer) -> None:
    pods = load_pods(write_pods([pod_row("p0", 1000, 1024, 0, 0, "T4")]))
    assert pods.gpu_spec == ("",)


def test_take_repeats_and_reorders(write_pods: Writer) -> None:
    pods = load_pods(write_pods([pod_row("a", 1, 1, 0, 0), pod_row("b", 2, 2, 1, 500)]))
    taken = pods.take(np.array([1, 1, 0]))
    assert taken.names == ("b", "b", "a")
    assert taken.cpu_milli.tolist() == [2, 2, 1]


@pytest.mark.parametrize(
    ("row", "what"),
    [
        ("p1,abc,1024,1,1000,,LS,Running,0,1,0", "cpu_milli='abc' is not a number"),
        ("p1,-5,1024,1,1000,,LS,Running,0,1,0", "cpu_milli=-5 is out of range"),
        ("p1,1000,1024,1,1500,,LS,Running,0,1,0", "gpu_milli=1500 is out of range"),
        ("p1,1000,1024,1,0,,LS,Running,0,1,0", "num_gpu=1 but gpu_milli=0"),
        ("p1,1000,1024,0,500,,LS,Running,0,1,0", "num_gpu=0 but gpu_milli=500"),
        ("p1,1000,1024,2,500,,LS,Running,0,1,0", "num_gpu=2 with gpu_milli=500"),
        ("p1,1000,1024,1.5,1000,,LS,Running,0,1,0", "num_gpu='1.5' is not a whole number"),
        ("p1,1000,1024,1", "4 fields where the header has 11"),
        (",1000,1024,1,1000,,LS,Running,0,1,0", "name is empty"),
    ],
)
def test_bad_pod_row_names_file_line_and_what(write_pods: Writer, row: str, what: str) -> None:
    path = write_pods([pod_row("p0", 1000, 1024, 1, 1000), row])
    with pytest.raises(LoadError) as caught:
        load_pods(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == 3  # header is line 1
    assert what in error.what
    assert error.hint
    assert f"{path}:3: " in str(error)
    assert "Hint: " in str(error)


def test_bad_rows_skipped_and_counted(write_pods: Writer) -> None:
    path = write_pods(
        [
            pod_row("p0", 1000, 1024, 1, 1000),
            "p1,x,1024,1,1000,,LS,Running,0,1,0",
            pod_row("p2", 1000, 1024, 1, 300),
            "p3,1000,1024",
        ]
    )
    pods = load_pods(path, skip_bad=True)
    assert pods.names == ("p0", "p2")
    assert [e.line for e in pods.skipped] == [3, 5]


def test_bad_node_rows(write_nodes: Writer) -> None:
    path = write_nodes(["n1,64000,262144,2,P100", "n2,64000,262144,2,", "n1,1,1,0,"])
    with pytest.raises(LoadError, match="has 2 GPUs but no model"):
        load_nodes(path)
    nodes = load_nodes(path, skip_bad=True)
    assert nodes.names == ("n1",)
    assert [e.line for e in nodes.skipped] == [3, 4]
    assert "appears twice" in nodes.skipped[1].what


def test_node_without_gpus_has_no_model(write_nodes: Writer) -> None:
    nodes = load_nodes(write_nodes(["cpu-only,32000,65536,0,nan"]))
    assert nodes.models == ("",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="file not found") as caught:
        load_pods(tmp_path / "nope.csv")
    assert caught.value.line == 0


def test_missing_column(write_pods: Writer) -> None:
    path = write_pods(["p0,1000,1024,1"], header="name,cpu_milli,memory_mib,num_gpu")
    with pytest.raises(LoadError, match="lacks column\\(s\\) gpu_milli") as caught:
        load_pods(path)
    assert caught.value.line == 1


def test_empty_file_and_no_rows(tmp_path: Path, write_pods: Writer) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LoadError, match="empty"):
        load_pods(empty)
    with pytest.raises(LoadError, match="no usable pods"):
        load_pods(write_pods([]))


def test_all_rows_bad_even_when_skipping(write_pods: Writer) -> None:
    with pytest.raises(LoadError, match="no usable pods"):
        load_pods(write_pods(["p0,x,1,1,1000,,LS,Running,0,1,0"]), skip_bad=True)


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(f"{POD_HEADER_SHORT}\np0,1000,1024,1,1000\n\np1,1000,1024,0,0\n", encoding="utf-8")
    assert load_pods(path).names == ("p0", "p1")
