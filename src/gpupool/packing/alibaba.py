"""Loaders for Alibaba's GPU cluster trace v2023 ("openb").

Two CSV schemas (github.com/alibaba/clusterdata, ``cluster-trace-gpu-v2023/csv/``):

* the node list ``openb_node_list_gpu_node.csv``: ``sn, cpu_milli, memory_mib, gpu, model``;
* the pod lists ``openb_pod_list_*.csv``: ``name, cpu_milli, memory_mib, num_gpu, gpu_milli``
  and, except in the ``multigpu*`` files, ``gpu_spec, qos, pod_phase, creation_time,
  deletion_time, scheduled_time``. Only the first six columns matter for packing.

Both loaders return column arrays (numpy), ready for vectorised scheduling. A bad row raises a
:class:`LoadError` naming the file, the line and what was wrong, with a hint; with
``skip_bad=True`` the row is left out instead and recorded in ``skipped``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gpupool.datasets import WHERE

MILLI = 1000

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL_COLUMNS = ("gpu_spec",)

_EMPTY_MARKERS = frozenset({"", "nan", "NaN", "none", "None", "null"})


class LoadError(ValueError):
    """A trace file that cannot be used as is: which file, which line, what, and what to do."""

    def __init__(self, file: str | Path, line: int, what: str, hint: str) -> None:
        self.file = str(file)
        self.line = line
        self.what = what
        self.hint = hint
        where = f"{self.file}:{line}" if line > 0 else self.file
        super().__init__(f"{where}: {what}\nHint: {hint}")


@dataclass(frozen=True)
class NodeTable:
    """GPU nodes as column arrays, in file order. ``model`` is '' for a node without GPUs."""

    file: str
    names: tuple[str, ...]
    cpu_milli: np.ndarray  # int64 [n]
    memory_mib: np.ndarray  # int64 [n]
    gpus: np.ndarray  # int64 [n]
    models: tuple[str, ...]
    skipped: tuple[LoadError, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_gpus(self) -> int:
        return int(self.gpus.sum())


@dataclass(frozen=True)
class PodTable:
    """Pods as column arrays, in file order. ``gpu_spec`` is the allowed GPU models, '|'-separated
    and normalised (empty entries dropped); '' means any model (and always '' for CPU-only pods)."""

    file: str
    names: tuple[str, ...]
    cpu_milli: np.ndarray  # int64 [n]
    memory_mib: np.ndarray  # int64 [n]
    num_gpu: np.ndarray  # int64 [n]
    gpu_milli: np.ndarray  # int64 [n], 0 for CPU-only pods, 1-1000 otherwise
    gpu_spec: tuple[str, ...]
    skipped: tuple[LoadError, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.names)

    @property
    def gpu_milli_total(self) -> np.ndarray:
        """GPU request of each pod in milli-GPUs (num_gpu x gpu_milli)."""
        return self.num_gpu * self.gpu_milli

    def take(self, index: np.ndarray) -> PodTable:
        """The pods at ``index`` (in that order; repeats allowed), as a new table."""
        idx = np.asarray(index, dtype=np.int64)
        return PodTable(
            file=self.file,
            names=tuple(self.names[i] for i in idx),
            cpu_milli=self.cpu_milli[idx],
            memory_mib=self.memory_mib[idx],
            num_gpu=self.num_gpu[idx],
            gpu_milli=self.gpu_milli[idx],
            gpu_spec=tuple(self.gpu_spec[i] for i in idx),
        )


class _RowError(Exception):
    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


def _int_field(row: dict[str, str], column: str, *, low: int = 0, high: int | None = None) -> int:
    raw = (row.get(column) or "").strip()
    if raw in _EMPTY_MARKERS:
        raise _RowError(f"{column} is empty", f"give {column} a whole number (e.g. 1000)")
    try:
        value = float(raw)
    except ValueError:
        raise _RowError(f"{column}={raw!r} is not a number", f"{column} must be a whole number") from None
    if not math.isfinite(value) or value != int(value):
        raise _RowError(f"{column}={raw!r} is not a whole number", f"{column} must be a whole number")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _RowError(f"{column}={number} is out of range", f"{column} must be {bound}")
    return number


def _text_field(row: dict[str, str], column: str) -> str:
    raw = (row.get(column) or "").strip()
    return "" if raw in _EMPTY_MARKERS else raw


def _rows(path: Path, required: tuple[str, ...], what: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; checks the header first."""
    if not path.exists():
        raise LoadError(
            path,
            0,
            f"{what} file not found",
            f"check the path (the trace lives in alibaba-gpu-v2023/ of {WHERE})",
        )
    if not path.is_file():
        raise LoadError(path, 0, f"{what} path is not a file", f"give the path of a {what} CSV file")
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise LoadError(
            path, 0, f"cannot read the {what} file: {exc.strerror}", "check permissions"
        ) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise LoadError(
                    path, 1, f"the {what} file is empty", f"expected a header: {','.join(required)}"
                )
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise LoadError(
                    path,
                    1,
                    f"header lacks column(s) {', '.join(missing)} (found: {','.join(header)})",
                    f"a {what} CSV starts with: {','.join(required)}",
                )
            for record in reader:
                if not record or all(not cell.strip() for cell in record):
                    continue
                line = reader.line_num
                if len(record) != len(header):
                    yield line, {"__bad__": f"{len(record)} fields where the header has {len(header)}"}
                    continue
                yield line, dict(zip(header, record, strict=True))
        except UnicodeDecodeError:
            raise LoadError(path, 0, f"the {what} file is not UTF-8 text", "give a CSV file") from None
        except csv.Error as exc:
            raise LoadError(path, reader.line_num, f"malformed CSV: {exc}", "check quoting") from None


def _load(
    path: str | Path,
    required: tuple[str, ...],
    what: str,
    parse: Callable[[dict[str, str]], tuple[object, ...]],
    skip_bad: bool,
) -> tuple[list[tuple[object, ...]], list[LoadError]]:
    file = Path(path)
    parsed: list[tuple[object, ...]] = []
    skipped: list[LoadError] = []
    for line, row in _rows(file, required, what):
        try:
            if "__bad__" in row:
                raise _RowError(row["__bad__"], "every row needs as many fields as the header")
            parsed.append(parse(row))
        except _RowError as exc:
            error = LoadError(file, line, exc.what, exc.hint)
            if not skip_bad:
                raise error from None
            skipped.append(error)
    return parsed, skipped


def load_nodes(path: str | Path, *, skip_bad: bool = False) -> NodeTable:
    """Load a node list (``sn, cpu_milli, memory_mib, gpu, model``)."""
    seen: set[str] = set()

    def parse(row: dict[str, str]) -> tuple[object, ...]:
        name = _text_field(row, "sn")
        if not name:
            raise _RowError("sn (node name) is empty", "every node needs a name")
        if name in seen:
            raise _RowError(f"node {name!r} appears twice", "node names (sn) must be unique")
        cpu = _int_field(row, "cpu_milli")
        mem = _int_field(row, "memory_mib")
        gpus = _int_field(row, "gpu", high=64)
        model = _text_field(row, "model")
        if gpus > 0 and not model:
            raise _RowError(f"node {name!r} has {gpus} GPUs but no model", "set model (e.g. V100M16)")
        seen.add(name)
        return name, cpu, mem, gpus, model if gpus > 0 else ""

    rows, skipped = _load(path, NODE_COLUMNS, "node list", parse, skip_bad)
    if not rows:
        raise LoadError(
            path, 0, "the node list has no usable nodes", "give a node list with at least one row"
        )
    names, cpu, mem, gpus, models = zip(*rows, strict=True)
    return NodeTable(
        file=str(path),
        names=tuple(str(n) for n in names),
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(mem, dtype=np.int64),
        gpus=np.array(gpus, dtype=np.int64),
        models=tuple(str(m) for m in models),
        skipped=tuple(skipped),
    )


def normalise_gpu_spec(spec: str) -> str:
    """'V100M16||V100M32' -> 'V100M16|V100M32'; 'nan' or '' -> '' (any model)."""
    if spec in _EMPTY_MARKERS:
        return ""
    return "|".join(part.strip() for part in spec.split("|") if part.strip())


def load_pods(path: str | Path, *, skip_bad: bool = False) -> PodTable:
    """Load a pod list (``name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec, ...]``)."""

    def parse(row: dict[str, str]) -> tuple[object, ...]:
        name = _text_field(row, "name")
        if not name:
            raise _RowError("name is empty", "every pod needs a name")
        cpu = _int_field(row, "cpu_milli")
        mem = _int_field(row, "memory_mib")
        num_gpu = _int_field(row, "num_gpu", high=64)
        gpu_milli = _int_field(row, "gpu_milli", high=MILLI)
        if num_gpu == 0 and gpu_milli != 0:
            raise _RowError(
                f"num_gpu=0 but gpu_milli={gpu_milli}",
                "a CPU-only pod has gpu_milli 0; a GPU pod has num_gpu >= 1",
            )
        if num_gpu >= 1 and gpu_milli == 0:
            raise _RowError(
                f"num_gpu={num_gpu} but gpu_milli=0",
                "gpu_milli is the share of each GPU (1-1000); use num_gpu 0 for a CPU-only pod",
            )
        if num_gpu > 1 and gpu_milli != MILLI:
            raise _RowError(
                f"num_gpu={num_gpu} with gpu_milli={gpu_milli}",
                "GPU sharing (gpu_milli < 1000) is for one-GPU pods; multi-GPU pods take whole GPUs (1000)",
            )
        spec = normalise_gpu_spec(_text_field(row, "gpu_spec")) if num_gpu > 0 else ""
        return name, cpu, mem, num_gpu, gpu_milli, spec

    rows, skipped = _load(path, POD_COLUMNS, "pod list", parse, skip_bad)
    if not rows:
        raise LoadError(path, 0, "the pod list has no usable pods", "give a pod list with at least one row")
    names, cpu, mem, num_gpu, gpu_milli, spec = zip(*rows, strict=True)
    return PodTable(
        file=str(path),
        names=tuple(str(n) for n in names),
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(mem, dtype=np.int64),
        num_gpu=np.array(num_gpu, dtype=np.int64),
        gpu_milli=np.array(gpu_milli, dtype=np.int64),
        gpu_spec=tuple(str(s) for s in spec),
        skipped=tuple(skipped),
    )
