"""Ask-dependent node order: the core's scoring policies (``gpupool``, ``fgd``, ...) behind the
node index (docs/scheduling.md, "Node order").

:class:`ScoredOrder` is the node sort policy of ``nodesortpolicy.type`` ``gpupool``, ``fgd``,
``bestfit``, ``dotprod`` and ``gpupacking``. It scores a node for an ask with the policy objects
of :mod:`gpupool.core.scorers` (a :class:`NodeView` of the node, an :class:`AskShape` of the
ask) and picks the best-scoring node that fits; ties go to the binpacking key, then the name.

Scores are cached per (GPU type, ask shape): a heap of the nodes that fit the shape, best first,
with lazy invalidation. Every change of an indexed node bumps its version and is appended to its
GPU type's change log; a shape's heap re-scores only the nodes logged since it was last asked, and entries
whose version is out of date are dropped when they reach the top. Scores are also memoised on
(NodeView, AskShape), since many nodes look alike.

The workload-aware policies learn from the asks observed (``observe``). The model is refreshed
when the number of observed asks has doubled since the last refresh: deterministic (it depends
only on the calls made) and rare; a refresh drops every cache.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from gpupool.core.model import Node
from gpupool.core.resources import Resources, gpu_milli
from gpupool.core.scorers import POLICY_NAMES, make_scoring_policy
from gpupool.core.scoring import MILLI, AskShape, NodeScore, NodeView, ScoringPolicy, fits, tightest_gpu
from gpupool.core.typical import WorkloadStats

NodeKey = tuple[float, str]
LEARNING = ("fgd", "gpupool")  # the policies that learn from observed asks
REFRESH_FACTOR = 2  # refresh the workload model when the observed count has grown this much
_MEMO_LIMIT = 1 << 16  # (NodeView, AskShape) scores remembered before the table starts afresh
_LOG_LIMIT = 1 << 15  # node changes logged before lagging shape caches are dropped

# A heap entry: (-score, binpacking key, node version, node name, GPU for a share).
_Entry = tuple[float, NodeKey, int, str, int | None]
# A NodeView's values as a plain tuple, in its fields' order (its memo key).
_Signature = tuple[tuple[int, ...], int, int, int, int, str | None]


def _node_signature(node: Node) -> _Signature:
    """The values of ``node_view(node)`` without making the view (most nodes look like one
    scored before, and then no view is needed)."""
    avail = node.avail
    cap = node.capacity
    return (
        tuple(node.gpu_free),
        avail.get("vcore", 0),
        avail.get("memory", 0),
        cap.get("vcore", 0),
        cap.get("memory", 0),
        # A GPU node without a GPU type label still takes GPU asks that accept any model.
        node.gpu_type if node.gpu_type is not None or not node.gpu_free else "",
    )


_NO_FIT = NodeScore(float("nan"))  # memo marker: the ask does not fit such a node


def ask_shape(res: Mapping[str, int], models: Iterable[str] = ()) -> AskShape:
    """The :class:`AskShape` of a resource map: CPU = vcore, memory, and its GPUs (a share of one
    GPU below 1000 milli-GPU, else whole GPUs)."""
    milli = gpu_milli(res)
    if milli <= 0:
        gpus, per = 0, 0
    elif milli < MILLI:
        gpus, per = 1, milli
    else:
        gpus, per = -(-milli // MILLI), MILLI
    return AskShape(
        cpu=res.get("vcore", 0), mem=res.get("memory", 0), gpus=gpus, gpu_milli=per, gpu_models=tuple(models)
    )


def node_view(node: Node) -> NodeView:
    """What a scoring policy sees of a node: its free milli-GPU per GPU (room held for asks
    counts as taken), free and total vcore and memory, and its GPU type ("" for GPUs of no type)."""
    return NodeView(*_node_signature(node))


class _Unlearned:
    """A learning policy before any ask was observed: every node scores the same (the tie order
    decides), a share goes to the tightest GPU."""

    name: ClassVar[str] = "unlearned"

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        return NodeScore(0.0, tightest_gpu(node.gpu_free, ask.gpu_milli) if ask.shares_gpu else None)


@dataclass
class _ShapeCache:
    """The nodes of one GPU type that fit one ask shape, best first (lazily invalidated)."""

    heap: list[_Entry] = field(default_factory=list)
    cursor: int = 0  # absolute position in the change log up to which nodes are scored


class ScoredOrder:
    """A node sort policy that scores nodes per ask with one of the core's scoring policies.

    ``key`` (the order without an ask, e.g. for the victim search) is the binpacking key."""

    def __init__(self, policy: str, key: Callable[[Node], NodeKey]) -> None:
        if policy not in POLICY_NAMES:
            raise ValueError(f"unknown scoring policy {policy!r} (expected one of {', '.join(POLICY_NAMES)})")
        self.name = policy
        self.key = key
        self.seen: dict[AskShape, int] = {}
        self.observed = 0
        self.refreshed_at = 0
        self.policy: ScoringPolicy = (
            _Unlearned() if policy in LEARNING else make_scoring_policy(policy, WorkloadStats({}))
        )
        # Scores by ask shape, then by the node's values (``_node_signature``): plain tuples hash and
        # compare in C, where the views' dataclass methods would run as Python code.
        self._memo: dict[AskShape, dict[_Signature, NodeScore]] = {}
        self._memo_size = 0
        self._caches: dict[tuple[str | None, AskShape], _ShapeCache] = {}
        self._nodes: dict[str | None, dict[str, tuple[Node, NodeKey]]] = {}
        self._type_of: dict[str, str | None] = {}
        self._sigs: dict[str, _Signature] = {}  # per indexed node, until it changes
        self._shapes: dict[tuple[int, int, int], AskShape] = {}  # (vcore, memory, milli-GPU)
        self._version: dict[str, int] = {}
        self._clock = 0
        # Per GPU type, the names of its nodes that changed, in order (a shape cache of that type
        # re-scores those logged since its cursor), and the absolute position of the first.
        self._logs: dict[str | None, list[str]] = {}
        self._log_starts: dict[str | None, int] = {}

    # ------------------------------------------------------------------ learning

    def observe(self, res: Resources, models: Iterable[str] = ()) -> None:
        """Count one ask; refresh the workload model when the count has doubled."""
        if self.name not in LEARNING:
            return
        shape = ask_shape(res, sorted(models))
        self.seen[shape] = self.seen.get(shape, 0) + 1
        self.observed += 1
        if self.observed >= REFRESH_FACTOR * self.refreshed_at or self.refreshed_at == 0:
            self.refresh()

    def refresh(self) -> None:
        """Learn the workload model afresh from every ask observed, and drop the caches."""
        model_gpus: dict[str, int] = {}
        for gpu_type, nodes in self._nodes.items():
            if gpu_type is not None:
                model_gpus[gpu_type] = sum(len(n.gpu_free) for n, _ in nodes.values())
        stats = WorkloadStats(model_gpus)
        for shape, n in self.seen.items():
            stats.observe(shape, n)
        self.policy = make_scoring_policy(self.name, stats)
        self.refreshed_at = self.observed
        self._memo.clear()
        self._memo_size = 0
        self._caches.clear()

    # ------------------------------------------------------------------ node changes

    def touch(self, node: Node, key: NodeKey | None) -> None:
        """Record that ``node`` changed: indexed under ``key``, or gone from the index (None)."""
        self._clock += 1
        name = node.name
        self._sigs.pop(name, None)
        if name in self._type_of:
            old = self._type_of.pop(name)
            del self._nodes[old][name]
            if old != node.gpu_type:
                self._log(old, name)
        if key is None:
            self._version.pop(name, None)
        else:
            self._nodes.setdefault(node.gpu_type, {})[name] = (node, key)
            self._type_of[name] = node.gpu_type
            self._version[name] = self._clock
        self._log(node.gpu_type, name)

    def _log(self, gpu_type: str | None, name: str) -> None:
        log = self._logs.get(gpu_type)
        if log is None:
            log = self._logs[gpu_type] = []
            self._log_starts[gpu_type] = 0
        log.append(name)
        if len(log) > _LOG_LIMIT:
            self._trim(gpu_type)

    def _trim(self, gpu_type: str | None) -> None:
        log = self._logs[gpu_type]
        start = self._log_starts[gpu_type]
        end = start + len(log)
        self._caches = {
            k: c for k, c in self._caches.items() if k[0] != gpu_type or end - c.cursor <= _LOG_LIMIT // 2
        }
        low = min((c.cursor for k, c in self._caches.items() if k[0] == gpu_type), default=end)
        del log[: low - start]
        self._log_starts[gpu_type] = low

    # ------------------------------------------------------------------ scoring

    def _score(self, view: NodeView, sig: _Signature, shape: AskShape) -> NodeScore:
        """The policy's score of a node (``view``, its values ``sig``) for an ask that fits it."""
        memo = self._memo.get(shape)
        found = memo.get(sig) if memo is not None else None
        if found is None or found is _NO_FIT:
            found = self.policy.score(view, shape)
            self._remember(shape, sig, found)
        return found

    def _remember(self, shape: AskShape, sig: _Signature, found: NodeScore) -> None:
        if self._memo_size >= _MEMO_LIMIT:
            self._memo.clear()
            self._memo_size = 0
        self._memo.setdefault(shape, {})[sig] = found
        self._memo_size += 1

    def share_gpu(self, node: Node, res: Resources) -> int | None:
        """The GPU the policy sends a share of a GPU to on ``node`` (None: not a share, or no
        GPU of the node fits it).

        The policy's choice, except that a share never breaks a fully free GPU while a partly
        used one has room: then the tightest GPU. (gpupool's hole term, learned from a workload
        of shares only, would spread quarters over fresh GPUs; a fully free GPU is worth more to
        whole-GPU asks than any hole.)"""
        shape = ask_shape(res)
        if not shape.shares_gpu:
            return None
        sig = _node_signature(node)
        view = NodeView(*sig)
        if not fits(view, shape):
            return None
        gpu = self._score(view, sig, shape).gpu
        if gpu is not None and view.gpu_free[gpu] == MILLI:
            tight = tightest_gpu(view.gpu_free, shape.gpu_milli)
            if tight is not None and view.gpu_free[tight] < MILLI:
                return tight
        return gpu

    def _entry(
        self, node: Node, key: NodeKey, shape: AskShape, memo: dict[_Signature, NodeScore]
    ) -> _Entry | None:
        """The node's heap entry for ``shape`` (None if the shape does not fit it); ``memo`` is
        the shape's memo (``self._memo[shape]``, or a dict the memo dropped: still true)."""
        name = node.name
        sig = self._sigs.get(name)
        if sig is None:
            sig = self._sigs[name] = _node_signature(node)
        s = memo.get(sig)
        if s is None:
            view = NodeView(*sig)
            s = self.policy.score(view, shape) if fits(view, shape) else _NO_FIT
            self._remember(shape, sig, s)
        if s is _NO_FIT:
            return None
        return (-s.score, key, self._version[name], name, s.gpu)

    def _cache(self, gpu_type: str | None, shape: AskShape) -> _ShapeCache:
        log = self._logs.get(gpu_type, [])
        start = self._log_starts.get(gpu_type, 0)
        end = start + len(log)
        cache = self._caches.get((gpu_type, shape))
        nodes = self._nodes.get(gpu_type, {})
        memo = self._memo.get(shape)
        if memo is None:
            memo = self._memo[shape] = {}
        if cache is None:
            heap = [
                e for node, key in nodes.values() if (e := self._entry(node, key, shape, memo)) is not None
            ]
            heapq.heapify(heap)
            cache = self._caches[(gpu_type, shape)] = _ShapeCache(heap, end)
            return cache
        if cache.cursor < end:
            done: set[str] = set()
            for name in log[cache.cursor - start :]:
                if name in done:
                    continue
                done.add(name)
                found = nodes.get(name)
                if found is not None:
                    entry = self._entry(found[0], found[1], shape, memo)
                    if entry is not None:
                        heapq.heappush(cache.heap, entry)
            cache.cursor = end
            if len(cache.heap) > 2 * len(nodes) + 64:
                cache.heap = [e for e in cache.heap if self._version.get(e[3]) == e[2]]
                heapq.heapify(cache.heap)
        return cache

    def best(
        self, types: Iterable[str | None] | None, fits_node: Callable[[Node], bool], res: Resources
    ) -> Node | None:
        """The best-scoring node among ``types`` (None: any) that ``fits_node``; ties go to the
        binpacking key, which ends in the node name."""
        shape_key = (res.get("vcore", 0), res.get("memory", 0), gpu_milli(res))
        shape = self._shapes.get(shape_key)
        if shape is None:
            shape = self._shapes[shape_key] = ask_shape(res)
        chosen = self._nodes.keys() if types is None else types
        best: tuple[float, NodeKey, Node] | None = None
        for t in list(chosen):
            nodes = self._nodes.get(t)
            if not nodes:
                continue
            heap = self._cache(t, shape).heap
            skipped: list[_Entry] = []
            while heap:
                entry = heap[0]
                if self._version.get(entry[3]) != entry[2]:
                    heapq.heappop(heap)
                    continue
                if best is not None and (entry[0], entry[1]) >= best[:2]:
                    break
                node = nodes[entry[3]][0]
                if fits_node(node):
                    best = (entry[0], entry[1], node)
                    break
                skipped.append(heapq.heappop(heap))
            for entry in skipped:
                heapq.heappush(heap, entry)
        return best[2] if best is not None else None
