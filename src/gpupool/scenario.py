"""Scheduling scenarios: load a scenario file, run it on the real scheduling core, check ``expect``.

The file format and the runner contract are in ``docs/scenarios.md``. Loading validates
every key (unknown keys, bad quantities, references to missing nodes, apps, asks or queues, an
invalid queue config) and raises ``ScenarioError`` naming the file, the key path and the fix.
Running drives ``gpupool.core.scheduler.Scheduler`` exactly as the simulator and the live
control plane do: register nodes, restore running allocations, submit, then run cycles at t=0
until nothing changes, then one second at a time for ``run.seconds``. A preempted allocation
is released at once (zero grace period).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpupool.config import ConfigError, parse_config
from gpupool.config.reader import Reader
from gpupool.config.schema import Keys, RawField
from gpupool.core.config import DEFAULT_GANG_TIMEOUT
from gpupool.core.configerror import At
from gpupool.core.configerror import kind as _kind
from gpupool.core.decisions import Preempt, Reject
from gpupool.core.model import DEFAULT_USER, GangSpec, NodeSpec
from gpupool.core.resources import GPU_MILLI, QuantityError, Resources, check_gpu_ask, format_gpus, is_gpu
from gpupool.core.scheduler import Scheduler
from gpupool.scenario_keys import (
    AppKeys,
    CountKeys,
    ExpectKeys,
    GangKeys,
    NodeKeys,
    PendingKeys,
    RunKeys,
    RunningKeys,
    ScenarioKeys,
)

MAX_CYCLES_PER_INSTANT = 100_000

_STATES = ("running", "waiting", "failed", "completed", "rejected")


class ScenarioError(ValueError):
    """An invalid scenario file: ``file``, the key ``path`` and what is wrong."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}" if path else f"{file}: {message}")
        self.file = file
        self.path = path
        self.message = message


@dataclass(slots=True)
class AppSpec:
    """An app of a scenario (``apps:``): queue (None: placement rules choose), user, groups, tags, gang."""

    id: str
    queue: str | None = None
    user: str = DEFAULT_USER
    groups: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    gang: GangSpec | None = None


@dataclass(slots=True)
class RunningSpec:
    """An allocation already bound when a scenario starts (``running:``), restored without quota checks."""

    id: str
    app: str
    node: str
    resources: Resources
    queue: str | None = None
    priority: int = 0
    age: float = 0.0
    preemptible: bool = True
    originator: bool = False
    elastic: bool = False  # an elastic workload's extra member (given back before any preemption)


@dataclass(slots=True)
class PendingSpec:
    """An ask submitted at t=0 (``pending:``); ``age`` backdates its creation, ``node`` requires a node."""

    id: str
    app: str
    resources: Resources
    gpu_types: tuple[str, ...] = ()
    priority: int = 0
    queue: str | None = None
    age: float = 0.0
    preempt_others: bool = True
    node: str | None = None


@dataclass(slots=True)
class Scenario:
    """A scenario file, loaded and checked: configuration, nodes, apps, allocations, asks and ``expect``."""

    name: str
    file: str
    description: str
    config: Any
    nodes: list[NodeSpec]
    apps: list[AppSpec]
    running: list[RunningSpec]
    pending: list[PendingSpec]
    seconds: int
    expect: dict[str, Any]


@dataclass(slots=True)
class ScenarioResult:
    """What running a scenario gave and which ``expect`` checks failed; ``to_json`` is its ``--json`` line."""

    name: str
    file: str
    passed: bool
    failures: list[str]
    placed: dict[str, str]
    preempted: list[str]
    pending: list[str]
    rejected: dict[str, str]
    queues: dict[str, str]
    states: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "passed": self.passed,
            "failures": self.failures,
            "placed": self.placed,
            "preempted": self.preempted,
            "pending": self.pending,
            "rejected": self.rejected,
            "queues": self.queues,
            "states": self.states,
        }


# ---------------------------------------------------------------------------- loading

Fields = dict[str, RawField]


class _Reader(Reader):
    """The queue configuration's readers, plus what a scenario needs: optional parts, defaults."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def first(self) -> ScenarioError:
        """The first issue found, as the error of the file."""
        issue = self.issues[0]
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        hint = f". Hint: {issue.hint}" if issue.hint else ""
        return ScenarioError(self.file, issue.path, f"{issue.message}{more}{hint}")

    def fail(self, path: str, message: str) -> ScenarioError:
        """An error of the file: an issue found earlier in the file if any, else this one."""
        return self.first() if self.issues else ScenarioError(self.file, path, message)

    def check(self) -> None:
        if self.issues:
            raise self.first()

    @staticmethod
    def get(fields: Fields, key: str, at: At) -> RawField:
        return fields.get(key) or RawField(None, at.key(key))

    def section(self, f: RawField, keys: type[Keys], what: str) -> Fields:
        """An optional mapping of known keys; absent or null is empty."""
        return {} if f.value is None else self.fields(f.value, f.at, keys, what) or {}

    def table(self, f: RawField, what: str) -> dict[Any, Any]:
        """An optional mapping of any keys (labels, tags, expectations by id)."""
        if f.value is None:
            return {}
        if not isinstance(f.value, Mapping):
            self.error(f.at, f"{what} must be a mapping (key: value), got {_kind(f.value)}")
            return {}
        return dict(f.value)

    def items(self, f: RawField, what: str) -> list[RawField]:
        """An optional list; absent or null is empty."""
        if f.value is None:
            return []
        if not isinstance(f.value, list):
            self.error(f.at, f"{what} must be a list, got {_kind(f.value)}")
            return []
        return [RawField(v, f.at.index(i)) for i, v in enumerate(f.value)]

    def text(self, f: RawField, what: str, *, required: bool = False) -> str | None:
        if f.value is None:
            if required:
                self.error(f.at, f"{what} is required")
            return None
        return self.string(f, what, scalar_ok=True)

    def texts(self, f: RawField, what: str) -> tuple[str, ...]:
        return tuple(self.text(x, f"{what} entries", required=True) or "" for x in self.items(f, what))

    def number_or(self, f: RawField, what: str, default: float) -> float:
        if f.value is None:
            return default
        value = self.number(f, what)
        return default if value is None else value

    def integer_or(self, f: RawField, what: str, default: int) -> int:
        if f.value is None:
            return default
        value = self.integer(f, what)
        return default if value is None else value

    def flag(self, f: RawField, what: str, default: bool) -> bool:
        if f.value is None:
            return default
        value = self.boolean(f, what)
        return default if value is None else value

    def amounts(self, f: RawField, what: str) -> Resources:
        if not isinstance(f.value, Mapping) or not f.value:
            got = "an empty mapping" if isinstance(f.value, Mapping) else _kind(f.value)
            self.error(f.at, f"{what} must be a non-empty map of resource: quantity, got {got}")
            return {}
        return self.resources(f, what) or {}

    def ask_amounts(self, f: RawField, what: str) -> Resources:
        """An ask's or allocation's resources: GPUs a share of one GPU or whole GPUs."""
        res = self.amounts(f, what)
        try:
            check_gpu_ask(res)
        except QuantityError as exc:
            name = str(exc).partition(":")[0]
            self.error(
                f.at.key(name), str(exc).partition(": ")[2], "write e.g. gpu: 0.25 (a share) or gpu: 2"
            )
        return res

    def capacity(self, f: RawField, what: str) -> Resources:
        """A node's capacity: its GPUs whole devices."""
        res = self.amounts(f, what)
        for k, v in res.items():
            if is_gpu(k) and v % GPU_MILLI:
                self.error(
                    f.at.key(k), f"{format_gpus(v)} is not whole GPUs", "a node has whole GPUs, e.g. gpu: 8"
                )
        return res


def load_scenario(path: str | Path) -> Scenario:
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ScenarioError(file, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(file, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_scenario(raw, file)


def parse_scenario(raw: object, file: str) -> Scenario:
    r = _Reader(file)
    top_at = At("")
    top = r.section(RawField(raw, top_at), ScenarioKeys, "the scenario")
    name = r.text(r.get(top, "name", top_at), "name") or Path(file).stem
    r.check()
    if "config" not in top:
        raise r.fail("config", "is required: the queue configuration (YuniKorn queues.yaml schema)")
    try:
        config = parse_config(top["config"].value, source=f"{file}: config")
    except ConfigError as exc:
        first = exc.issues[0]
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        hint = f" Hint: {first.hint}" if first.hint else ""
        raise r.fail(f"config.{first.path}", f"{first.message}{more}.{hint}") from None

    nodes: list[NodeSpec] = []
    for item in r.items(r.get(top, "nodes", top_at), "nodes"):
        n = r.section(item, NodeKeys, "a node")
        at = item.at
        nodes.append(
            NodeSpec(
                r.text(r.get(n, "name", at), "name", required=True) or "",
                r.capacity(r.get(n, "capacity", at), "capacity"),
                {str(k): str(v) for k, v in r.table(r.get(n, "labels", at), "labels").items()},
                r.flag(r.get(n, "schedulable", at), "schedulable", True),
            )
        )
    node_names = [n.name for n in nodes]
    _unique(r, node_names, "nodes", "node")

    apps: list[AppSpec] = []
    for item in r.items(r.get(top, "apps", top_at), "apps"):
        a = r.section(item, AppKeys, "an app")
        at = item.at
        gang = None
        if r.get(a, "gang", at).value is not None:
            g = r.section(a["gang"], GangKeys, "a gang")
            style = (r.text(r.get(g, "style", a["gang"].at), "gang.style") or "soft").lower()
            if style not in ("soft", "hard"):
                r.error(r.get(g, "style", a["gang"].at).at, f"gang.style must be soft or hard, got {style!r}")
            timeout_f = r.get(g, "timeout", a["gang"].at)
            timeout = DEFAULT_GANG_TIMEOUT
            if timeout_f.value is not None:
                seconds = r.seconds(timeout_f, "gang.timeout")
                timeout = DEFAULT_GANG_TIMEOUT if seconds is None else seconds
            span = r.flag(r.get(g, "span_regions", a["gang"].at), "gang.span_regions", False)
            gang = GangSpec(style, timeout, span)
        apps.append(
            AppSpec(
                r.text(r.get(a, "id", at), "id", required=True) or "",
                r.text(r.get(a, "queue", at), "queue"),
                r.text(r.get(a, "user", at), "user") or DEFAULT_USER,
                r.texts(r.get(a, "groups", at), "groups"),
                {str(k): str(v) for k, v in r.table(r.get(a, "tags", at), "tags").items()},
                gang,
            )
        )
    _unique(r, [a.id for a in apps], "apps", "app")

    running: list[RunningSpec] = []
    for item in r.items(r.get(top, "running", top_at), "running"):
        x = r.section(item, RunningKeys, "a running allocation")
        at = item.at
        node_f = r.get(x, "node", at)
        node = r.text(node_f, "node", required=True) or ""
        if node not in node_names:
            raise r.fail(node_f.at.path, f"refers to node {node!r}, which is not in nodes")
        running.append(
            RunningSpec(
                id=r.text(r.get(x, "id", at), "id", required=True) or "",
                app=r.text(r.get(x, "app", at), "app", required=True) or "",
                node=node,
                resources=r.ask_amounts(r.get(x, "resources", at), "resources"),
                queue=r.text(r.get(x, "queue", at), "queue"),
                priority=r.integer_or(r.get(x, "priority", at), "priority", 0),
                age=r.number_or(r.get(x, "age", at), "age", 0.0),
                preemptible=r.flag(r.get(x, "preemptible", at), "preemptible", True),
                originator=r.flag(r.get(x, "originator", at), "originator", False),
                elastic=r.flag(r.get(x, "elastic", at), "elastic", False),
            )
        )

    pending: list[PendingSpec] = []
    for item in r.items(r.get(top, "pending", top_at), "pending"):
        x = r.section(item, PendingKeys, "a pending ask")
        at = item.at
        node_f = r.get(x, "node", at)
        required = r.text(node_f, "node")
        if required is not None and required not in node_names:
            raise r.fail(node_f.at.path, f"refers to node {required!r}, which is not in nodes")
        pending.append(
            PendingSpec(
                id=r.text(r.get(x, "id", at), "id", required=True) or "",
                app=r.text(r.get(x, "app", at), "app", required=True) or "",
                resources=r.ask_amounts(r.get(x, "resources", at), "resources"),
                gpu_types=r.texts(r.get(x, "gpu_types", at), "gpu_types"),
                priority=r.integer_or(r.get(x, "priority", at), "priority", 0),
                queue=r.text(r.get(x, "queue", at), "queue"),
                age=r.number_or(r.get(x, "age", at), "age", 0.0),
                preempt_others=r.flag(r.get(x, "preempt_others", at), "preempt_others", True),
                node=required,
            )
        )
    _unique(r, [x.id for x in running] + [x.id for x in pending], "running/pending", "allocation or ask")

    _check_running_queues(r, config, apps, running)

    run = r.section(r.get(top, "run", top_at), RunKeys, "run")
    seconds_f = r.get(run, "seconds", At("run"))
    seconds = r.integer_or(seconds_f, "run.seconds", 0)
    if seconds < 0:
        r.error(seconds_f.at, f"run.seconds must not be negative, got {seconds}")
    expect = r.section(r.get(top, "expect", top_at), ExpectKeys, "expect")
    _check_expect(r, expect, apps, running, pending)
    description = r.text(r.get(top, "description", top_at), "description") or ""
    r.check()
    return Scenario(
        name=name,
        file=file,
        description=description,
        config=config,
        nodes=nodes,
        apps=apps,
        running=running,
        pending=pending,
        seconds=seconds,
        expect={key: f.value for key, f in expect.items()},
    )


def _unique(r: _Reader, ids: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for x in ids:
        if x in seen:
            raise r.fail(where, f"{what} id {x!r} is used twice")
        seen.add(x)


def _queue_paths(config: Any) -> set[str]:
    out: set[str] = set()

    def walk(q: Any, prefix: str) -> None:
        path = f"{prefix}.{q.name}" if prefix else q.name
        out.add(path)
        for c in q.queues:
            walk(c, path)

    walk(config.partitions[0].root, "")
    return out


def _check_running_queues(r: _Reader, config: Any, apps: list[AppSpec], running: list[RunningSpec]) -> None:
    paths = _queue_paths(config)
    app_queue = {a.id: a.queue for a in apps}
    for i, x in enumerate(running):
        if x.queue is not None:
            if x.queue not in paths:
                raise r.fail(
                    f"running[{i}].queue", f"refers to queue {x.queue!r}, which the config does not define"
                )
            app_queue.setdefault(x.app, x.queue)
        elif app_queue.get(x.app) is None:
            raise r.fail(
                f"running[{i}].queue",
                f"app {x.app!r} has no queue: give the allocation a queue or list the app with one",
            )


def _check_expect(
    r: _Reader,
    expect: Fields,
    apps: list[AppSpec],
    running: list[RunningSpec],
    pending: list[PendingSpec],
) -> None:
    ask_ids = {p.id for p in pending}
    alloc_ids = {x.id for x in running} | ask_ids
    app_ids = {a.id for a in apps} | {x.app for x in running} | {p.app for p in pending}

    def need(ids: Iterable[object], known: set[str], path: str, what: str) -> None:
        for x in ids:
            if str(x) not in known:
                raise r.fail(path, f"refers to {what} {x!r}, which the scenario does not define")

    def values(f: RawField, what: str) -> list[object]:
        return [x.value for x in r.items(f, what)]

    if "placed" in expect:
        need(r.table(expect["placed"], "expect.placed"), ask_ids, "expect.placed", "pending ask")
    if "gpus" in expect:
        gpus = r.table(expect["gpus"], "expect.gpus")
        need(gpus, alloc_ids, "expect.gpus", "allocation or ask")
        for k, v in gpus.items():
            if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                raise r.fail(f"expect.gpus.{k}", f"must be a list of GPU indices like [0], got {v!r}")
    if "why" in expect:
        need(r.table(expect["why"], "expect.why"), ask_ids, "expect.why", "pending ask")
    if "pending" in expect:
        need(values(expect["pending"], "expect.pending"), ask_ids, "expect.pending", "pending ask")
    if "preempted" in expect:
        need(values(expect["preempted"], "expect.preempted"), alloc_ids, "expect.preempted", "allocation")
    if "preempted_count" in expect:
        pc_f = expect["preempted_count"]
        pc = r.section(pc_f, CountKeys, "expect.preempted_count")
        r.integer_or(r.get(pc, "count", pc_f.at), "expect.preempted_count.count", 0)
        among = values(r.get(pc, "among", pc_f.at), "expect.preempted_count.among")
        need(among, alloc_ids, "expect.preempted_count.among", "allocation")
    for key in ("placed_count", "rejected", "queue", "state"):
        if key in expect:
            m = r.table(expect[key], f"expect.{key}")
            need(m.keys(), app_ids, f"expect.{key}", "app")
            if key == "state":
                for app_id, st in m.items():
                    if st not in _STATES:
                        raise r.fail(
                            f"expect.state.{app_id}", f"must be one of {', '.join(_STATES)}, got {st!r}"
                        )


# ---------------------------------------------------------------------------- running


def run_scenario(sc: Scenario) -> ScenarioResult:
    partition = sc.config.partitions[0]
    sched = Scheduler(partition)
    for n in sc.nodes:
        sched.add_node(n)
    specs = {a.id: a for a in sc.apps}
    rejected: dict[str, str] = {}
    preempted: list[str] = []
    from_asks = {p.id for p in sc.pending}

    # 2. restore running allocations (as on recovery: no quota checks)
    for x in sc.running:
        if x.app not in sched.apps:
            spec = specs.get(x.app) or AppSpec(x.app)
            sched.submit(
                x.app,
                queue=x.queue or spec.queue,
                user=spec.user,
                groups=spec.groups,
                tags=spec.tags,
                gang=spec.gang,
                forced=True,
            )
        sched.restore(
            x.id,
            x.app,
            x.node,
            x.resources,
            start=-x.age,
            priority=x.priority,
            preemptible=x.preemptible,
            originator=x.originator,
            elastic=x.elastic,
        )

    # 3. submit apps and asks in file order
    def submit(app_id: str, queue: str | None) -> None:
        if app_id in sched.apps or app_id in rejected:
            return
        spec = specs.get(app_id) or AppSpec(app_id, queue=queue)
        rej = sched.submit(
            app_id,
            queue=spec.queue or queue,
            user=spec.user,
            groups=spec.groups,
            tags=spec.tags,
            gang=spec.gang,
        )
        if rej is not None:
            rejected[app_id] = str(rej.reason)

    for a in sc.apps:
        submit(a.id, a.queue)
    for p in sc.pending:
        submit(p.app, p.queue)
        if p.app in rejected:
            continue
        rej = sched.add_ask(
            p.app,
            p.id,
            p.resources,
            created=-p.age,
            priority=p.priority,
            gpu_types=p.gpu_types,
            preempt_others=p.preempt_others,
            required_node=p.node,
        )
        if rej is not None:
            rejected[p.app] = str(rej.reason)

    # 4./5. cycles at t=0 until nothing changes, then one second at a time
    for now in range(0, sc.seconds + 1):
        for _ in range(MAX_CYCLES_PER_INSTANT):
            result = sched.schedule(float(now))
            if not result.changed:
                break
            for d in result.decisions:
                if isinstance(d, Preempt):
                    preempted.append(d.alloc_id)
                    sched.release(d.alloc_id)
                elif isinstance(d, Reject):
                    rejected[d.app_id] = str(d.reason)

    placed = {a.id: a.node.name for a in sched.allocations.values() if a.id in from_asks}
    result_pending = [p.id for p in sc.pending if p.id in sched.asks]
    queues = {app_id: app.queue.path for app_id, app in sched.apps.items() if app.queue is not None}
    states = {app_id: app.state.value for app_id, app in sched.apps.items()}
    failures = check_expectations(
        sc.expect, placed, preempted, result_pending, rejected, queues, states, sched
    )
    return ScenarioResult(
        name=sc.name,
        file=sc.file,
        passed=not failures,
        failures=failures,
        placed=placed,
        preempted=preempted,
        pending=result_pending,
        rejected=rejected,
        queues=queues,
        states=states,
    )


def check_expectations(
    expect: dict[str, Any],
    placed: dict[str, str],
    preempted: list[str],
    pending: list[str],
    rejected: dict[str, str],
    queues: dict[str, str],
    states: dict[str, str],
    sched: Scheduler,
) -> list[str]:
    failures: list[str] = []
    for ask, node in (expect.get("placed") or {}).items():
        got = placed.get(ask)
        if got is None:
            why = ""
            if ask in sched.asks:
                why = f" (pending: {sched.explain(ask)})"
            failures.append(f"placed: {ask} expected {node}, got nothing{why}")
        elif str(node) != "any" and got != str(node):
            failures.append(f"placed: {ask} expected {node}, got {got}")
    for alloc_id, want in (expect.get("gpus") or {}).items():
        alloc = sched.allocations.get(alloc_id)
        got_ids = list(alloc.gpu_ids) if alloc is not None else None
        if got_ids != list(want):
            failures.append(f"gpus: {alloc_id} expected GPUs {list(want)}, got {got_ids}")
    for ask, text in (expect.get("why") or {}).items():
        why = str(sched.explain(ask)) if ask in sched.asks else "not pending"
        if str(text).lower() not in why.lower():
            failures.append(f"why: {ask} reason should contain {text!r}, got {why!r}")
    for ask in expect.get("pending") or []:
        if ask not in pending:
            where = f"placed on {placed[ask]}" if ask in placed else "not pending"
            failures.append(f"pending: {ask} expected pending, got {where}")
    if "preempted" in expect:
        want = sorted(str(x) for x in expect["preempted"] or [])
        if sorted(set(preempted)) != want:
            failures.append(f"preempted: expected {want}, got {sorted(set(preempted))}")
    if "preempted_count" in expect:
        pc = expect["preempted_count"]
        among = {str(x) for x in pc.get("among") or []}
        victims = sorted(set(preempted))
        inside = [x for x in victims if x in among]
        if len(inside) != pc.get("count") or len(inside) != len(victims):
            wanted = f"{pc.get('count')} among {sorted(among)}"
            failures.append(f"preempted_count: expected {wanted}, got {victims}")
    for app, n in (expect.get("placed_count") or {}).items():
        app_obj = sched.apps.get(app)
        got_n = sum(1 for a in (app_obj.allocations.values() if app_obj else []) if a.id in placed)
        if got_n != n:
            failures.append(f"placed_count: {app} expected {n}, got {got_n}")
    for app, text in (expect.get("rejected") or {}).items():
        if app not in rejected:
            failures.append(f"rejected: {app} expected rejected ({text!r}), got {states.get(app, 'unknown')}")
        elif str(text).lower() not in rejected[app].lower():
            failures.append(f"rejected: {app} reason should contain {text!r}, got {rejected[app]!r}")
    for app, path in (expect.get("queue") or {}).items():
        if queues.get(app) != path:
            failures.append(f"queue: {app} expected {path}, got {queues.get(app)}")
    for app, state in (expect.get("state") or {}).items():
        if states.get(app) != state:
            failures.append(f"state: {app} expected {state}, got {states.get(app)}")
    return failures
