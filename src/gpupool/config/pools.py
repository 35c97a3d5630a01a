"""Reading gpupool's additions to ``queues.yaml``: node pools with their instance types, and sizes.

``nodepools`` are groups of nodes that grow and shrink (see ``docs/elastic.md``); ``sizes`` is the
catalog of standard sizes, each an ordered list of shapes to fall back through
(``DEFAULT_SIZES`` when the file gives none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gpupool.config.reader import Reader
from gpupool.config.schema import HeadroomKeys, InstanceKeys, PoolKeys, RawField, ShapeKeys, SizeKeys
from gpupool.core.config import DEFAULT_BURST_HEADROOM, InstanceType, NodePool, Shape, Size
from gpupool.core.configerror import kind as _kind
from gpupool.core.resources import GPU_MILLI, QuantityError, check_gpu_ask, gpu_milli, parse_quantity

__all__ = ["DEFAULT_SIZES", "PoolReader"]

_GI = 2**30
# What a key left out of a node pool or an instance type means: the core's defaults.
_POOL = NodePool(name="", instance_types=())
_INSTANCE = InstanceType(name="", gpu_type=None, gpus=0, vcore=0, memory=0)


def _default_sizes() -> dict[str, Size]:
    # Each size falls back across GPU types in order of preference, ending with "any type".
    # Small jobs prefer the cheap inference GPU (L4); big gangs prefer the fastest (H100).
    def size(name: str, gpus: int, preference: tuple[str, ...], description: str) -> Size:
        res = {"gpu": gpus * GPU_MILLI, "vcore": 8000 * gpus, "memory": 64 * _GI * gpus}
        shapes = tuple(Shape(resources=dict(res), gpu_types=(t,)) for t in preference)
        return Size(name=name, shapes=(*shapes, Shape(resources=dict(res))), description=description)

    return {
        "small": size("small", 1, ("L4", "A100"), "1 GPU, 8 vcore, 64Gi: notebooks, inference, debugging"),
        "medium": size("medium", 2, ("A100", "H100"), "2 GPUs, 16 vcore, 128Gi: fine-tuning"),
        "large": size("large", 4, ("H100", "A100"), "4 GPUs, 32 vcore, 256Gi: training on half a node"),
        "xlarge": size("xlarge", 8, ("H100", "A100"), "8 GPUs, 64 vcore, 512Gi: a whole 8-GPU node"),
    }


DEFAULT_SIZES: dict[str, Size] = _default_sizes()


class PoolReader(Reader):
    """Reads ``nodepools`` into ``NodePool`` and ``sizes`` into ``Size``."""

    def series_headroom(
        self, name: str, hf: dict[str, RawField], window: float
    ) -> tuple[float, float, int, float, bool]:
        """A pool's ``headroom.memory``, ``series``, ``seriesMin``, ``seriesWindow`` and ``fit``
        (see ``capacity.series_headroom_gpus``): all need the burst-sized headroom's ``window``,
        and with a ``window`` the keys left out take ``DEFAULT_BURST_HEADROOM``'s values
        (``memory: 0`` or ``series: 0`` turns the series part off, ``fit: false`` counts whole
        idle nodes). Without a ``window`` there is no burst-sized headroom: all are off."""
        for key in ("memory", "series", "seriesmin", "serieswindow", "fit"):
            if key in hf and not window:
                shown = {"seriesmin": "seriesMin", "serieswindow": "seriesWindow"}.get(key, key)
                self.error(
                    hf[key].at,
                    f"node pool `{name}`: headroom.{shown} needs headroom.window",
                    "add window: 15m and maxNodes: 8",
                )
                return 0.0, 0.0, 0, 0.0, False
        if not window:
            return 0.0, 0.0, 0, 0.0, False
        d = DEFAULT_BURST_HEADROOM
        memory, series, series_min, series_window, fit = (
            d.memory,
            d.series,
            d.series_min,
            d.series_window,
            d.fit,
        )
        if "memory" in hf:
            memory = self.seconds(hf["memory"], "headroom.memory") or 0.0
        if "series" in hf:
            v = hf["series"].value
            if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1:
                series = float(v)
            else:
                self.error(
                    hf["series"].at,
                    f"node pool `{name}`: headroom.series must be a share between 0 and 1, got {_kind(v)}",
                    "e.g. series: 0.2 (a fifth of a queue's recent burst peak)",
                )
        if "seriesmin" in hf:
            series_min = self.amount(hf["seriesmin"], "headroom.seriesMin") or 0
        if "serieswindow" in hf:
            series_window = self.seconds(hf["serieswindow"], "headroom.seriesWindow") or 0.0
        if "fit" in hf:
            fit = bool(self.boolean(hf["fit"], "headroom.fit"))
        if memory <= 0 or series <= 0:
            memory = series = 0.0  # either at 0 turns the series part off
        return memory, series, series_min, series_window, fit

    def nodepools(self, f: RawField) -> list[NodePool]:
        if not isinstance(f.value, list):
            self.error(f.at, f"nodepools must be a list of pools, got {_kind(f.value)}")
            return []
        out: list[NodePool] = []
        names: set[str] = set()
        for i, raw in enumerate(f.value):
            at = f.at.index(i)
            fields = self.fields(raw, at, PoolKeys, "a node pool")
            if fields is None:
                continue
            name = self.string(fields["name"], "name") if "name" in fields else None
            if not name:
                self.error(at, "the node pool has no name", "add name: gpu-pool")
                continue
            if name in names:
                self.error(fields["name"].at, f"node pool `{name}` is defined twice")
                continue
            names.add(name)
            lo = self.amount(fields["min"], "min") if "min" in fields else 0
            hi = self.amount(fields["max"], "max") if "max" in fields else 10
            if lo is not None and hi is not None and lo > hi:
                self.error(at, f"node pool `{name}`: min {lo} is above max {hi}", "make min <= max")
            headroom_nodes = headroom_gpus = headroom_max = series_min = 0
            window = memory = series = series_window = 0.0
            fit = False
            if "headroom" in fields:
                hf = self.fields(fields["headroom"].value, fields["headroom"].at, HeadroomKeys, "headroom")
                if hf is not None:
                    headroom_nodes = (self.amount(hf["nodes"], "headroom.nodes") or 0) if "nodes" in hf else 0
                    headroom_gpus = (self.amount(hf["gpus"], "headroom.gpus") or 0) if "gpus" in hf else 0
                    if "window" in hf:
                        window = self.seconds(hf["window"], "headroom.window") or 0.0
                    if "maxnodes" in hf:
                        headroom_max = self.amount(hf["maxnodes"], "headroom.maxNodes") or 0
                    if window and not headroom_max:
                        self.error(
                            hf["window"].at,
                            f"node pool `{name}`: headroom.window needs headroom.maxNodes, the most "
                            "nodes a burst may keep warm",
                            "add maxNodes: 4 next to window",
                        )
                    elif headroom_max and not window:
                        self.error(
                            hf["maxnodes"].at,
                            f"node pool `{name}`: headroom.maxNodes caps the burst-sized headroom, "
                            "which needs headroom.window",
                            "add window: 15m (arrivals of the last 15 minutes size the headroom)",
                        )
                    elif headroom_max and headroom_max < headroom_nodes:
                        self.error(
                            hf["maxnodes"].at,
                            f"node pool `{name}`: headroom.maxNodes {headroom_max} is below "
                            f"headroom.nodes {headroom_nodes}",
                            "make maxNodes >= nodes",
                        )
                    memory, series, series_min, series_window, fit = self.series_headroom(name, hf, window)
            idle = (
                self.seconds(fields["idletimeout"], "idletimeout")
                if "idletimeout" in fields
                else _POOL.idle_timeout
            )
            transfer = self.cost(fields["transfercost"], "transfercost") if "transfercost" in fields else 0.0
            types: list[InstanceType] = []
            listed = fields["instancetypes"].value if "instancetypes" in fields else None
            if not isinstance(listed, list) or not listed:
                self.error(at, f"node pool `{name}` needs instancetypes: a list", "see docs/elastic.md")
            else:
                itf = fields["instancetypes"]
                for j, item in enumerate(listed):
                    it = self.instance_type(RawField(item, itf.at.index(j)))
                    if it is not None:
                        types.append(it)
            if types:
                out.append(
                    NodePool(
                        name=name,
                        instance_types=tuple(types),
                        min=lo or _POOL.min,
                        max=hi if hi is not None else _POOL.max,
                        headroom_nodes=headroom_nodes,
                        headroom_gpus=headroom_gpus,
                        idle_timeout=idle if idle is not None else _POOL.idle_timeout,
                        headroom_window=window,
                        headroom_max_nodes=headroom_max,
                        headroom_memory=memory,
                        headroom_series=series,
                        headroom_series_min=series_min,
                        headroom_series_window=series_window,
                        headroom_fit=fit,
                        transfer_cost=transfer,
                    )
                )
        return out

    def instance_type(self, f: RawField) -> InstanceType | None:
        fields = self.fields(f.value, f.at, InstanceKeys, "an instance type")
        if fields is None:
            return None
        name = self.string(fields["name"], "name") if "name" in fields else None
        if not name:
            self.error(f.at, "the instance type has no name", "add name: h100x8")
            return None
        gpus = self.amount(fields["gpus"], "gpus") if "gpus" in fields else 0
        gpu_type = self.string(fields["gputype"], "gputype", scalar_ok=True) if "gputype" in fields else None
        if gpus and not gpu_type:
            self.error(f.at, f"instance type `{name}` has GPUs but no gputype", "add gputype: H100")
        quantities: dict[str, int] = {}
        for key, resource, default in (("vcore", "vcore", 8000), ("memory", "memory", 64 * 2**30)):
            quantities[key] = default
            if key in fields:
                try:
                    quantities[key] = parse_quantity(resource, fields[key].value)
                except QuantityError as exc:
                    self.error(fields[key].at, str(exc))
        cost = self.cost(fields["hourlycost"], "hourlycost") if "hourlycost" in fields else 0.0
        boot = self.seconds(fields["boottime"], "boottime") if "boottime" in fields else _INSTANCE.boot_time
        region = self.string(fields["region"], "region") if "region" in fields else _INSTANCE.region
        return InstanceType(
            name=name,
            gpu_type=gpu_type,
            gpus=gpus or 0,
            vcore=quantities["vcore"],
            memory=quantities["memory"],
            region=region or _INSTANCE.region,
            hourly_cost=cost,
            boot_time=boot if boot is not None else _INSTANCE.boot_time,
        )

    # ---- sizes

    def sizes(self, f: RawField) -> dict[str, Size]:
        raw = f.value
        if not isinstance(raw, Mapping):
            self.error(f.at, f"sizes must be a map of size name: shapes, got {_kind(raw)}")
            return {}
        out: dict[str, Size] = {}
        for name, spec in raw.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                self.error(f.at, f"size name {name!r} must be a word (letters, digits, _ . -)")
                continue
            sat = f.at.key(name)
            description = ""
            shapes_field = RawField(spec, sat)
            if isinstance(spec, Mapping):
                fields = self.fields(spec, sat, SizeKeys, f"size {name}")
                if fields is None:
                    continue
                if "description" in fields and fields["description"].value is not None:
                    description = self.string(fields["description"], "description") or ""
                if "shapes" not in fields:
                    self.error(sat, f"size `{name}` has no shapes", "add shapes: [{resources: {gpu: 1}}]")
                    continue
                shapes_field = fields["shapes"]
            shapes = self.shapes(shapes_field, name)
            if shapes:
                out[name] = Size(name=name, shapes=tuple(shapes), description=description)
        return out

    def shapes(self, f: RawField, size: str) -> list[Shape]:
        if not isinstance(f.value, list) or not f.value:
            self.error(
                f.at,
                f"size `{size}` must list one or more shapes, got {_kind(f.value)}",
                "e.g. [{resources: {gpu: 1, vcore: 8, memory: 64Gi}, gpu_types: [H100]}]",
            )
            return []
        out: list[Shape] = []
        for i, raw in enumerate(f.value):
            at = f.at.index(i)
            fields = self.fields(raw, at, ShapeKeys, "a shape")
            if fields is None:
                continue
            if "resources" not in fields:
                self.error(
                    at, "the shape has no resources", "add resources: {gpu: 1, vcore: 8, memory: 64Gi}"
                )
                continue
            before = len(self.issues)
            res = self.resources(fields["resources"], "resources")
            if res is None or not any(res.values()):
                if len(self.issues) == before:
                    self.error(
                        fields["resources"].at, "the shape asks for nothing", "give at least one resource > 0"
                    )
                continue
            try:
                check_gpu_ask(res)
            except QuantityError as exc:
                name, _, why = str(exc).partition(": ")
                self.error(
                    fields["resources"].at.key(name),
                    why,
                    "a share of one GPU (gpu: 0.5) or whole GPUs (gpu: 2)",
                )
                continue
            types: tuple[str, ...] = ()
            if "gpu_types" in fields:
                names = self.names(fields["gpu_types"], "gpu_types")
                if names is not None:
                    types = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
                    if types and not gpu_milli(res):
                        self.error(
                            fields["gpu_types"].at,
                            "gpu_types is set but the shape asks for no GPU",
                            "add gpu: N to the resources, or drop gpu_types",
                        )
            out.append(Shape(resources=res, gpu_types=types))
        return out
