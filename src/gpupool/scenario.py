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

from gpupool.config import ConfigError, parse_config, parse_duration
from gpupool.core.config import DEFAULT_GANG_TIMEOUT
from gpupool.core.decisions import Preempt, Reject
from gpupool.core.model import GangSpec, NodeSpec
from gpupool.core.resources import QuantityError, Resources, parse_resources
from gpupool.core.scheduler import Scheduler

MAX_CYCLES_PER_INSTANT = 100_000

_TOP = ("name", "description", "config", "nodes", "apps", "running", "pending", "run", "expect")
_NODE = ("name", "capacity", "labels", "schedulable")
_APP = ("id", "queue", "user", "groups", "tags", "gang")
_GANG = ("style", "timeout", "span_regions")
_RUNNING = (
    "id",
    "app",
    "queue",
    "node",
    "resources",
    "priority",
    "age",
    "preemptible",
    "originator",
    "elastic",
)
_PENDING = ("id", "app", "resources", "gpu_types", "priority", "queue", "age", "preempt_others", "node")
_RUN = ("seconds",)
_EXPECT = ("placed", "pending", "preempted", "preempted_count", "placed_count", "rejected", "queue", "state")
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
    id: str
    queue: str | None = None
    user: str = "anonymous"
    groups: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    gang: GangSpec | None = None


@dataclass(slots=True)
class RunningSpec:
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


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(self.file, path, message)

    def mapping(self, raw: object, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(raw).__name__}")
        for key in raw:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key (allowed here: {', '.join(allowed)})",
                )
        return dict(raw)

    def items(self, raw: object, path: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.fail(path, f"expected a list, got {type(raw).__name__}")
        return raw

    def text(self, raw: object, path: str, *, required: bool = False) -> str | None:
        if raw is None:
            if required:
                raise self.fail(path, "is required")
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise self.fail(path, f"expected a string, got {type(raw).__name__}")
        return str(raw)

    def number(self, raw: object, path: str, default: float) -> float:
        if raw is None:
            return default
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.fail(path, f"expected a number, got {raw!r}")
        if raw < 0:
            raise self.fail(path, f"must not be negative, got {raw!r}")
        return float(raw)

    def integer(self, raw: object, path: str, default: int) -> int:
        if raw is None:
            return default
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.fail(path, f"expected an integer, got {raw!r}")
        return raw

    def boolean(self, raw: object, path: str, default: bool) -> bool:
        if raw is None:
            return default
        if not isinstance(raw, bool):
            raise self.fail(path, f"expected true or false, got {raw!r}")
        return raw

    def resources(self, raw: object, path: str) -> Resources:
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(path, "expected a non-empty map of resource -> quantity")
        try:
            return parse_resources(raw)
        except QuantityError as exc:
            raise self.fail(path, str(exc)) from None

    def strings(self, raw: object, path: str) -> tuple[str, ...]:
        return tuple(
            self.text(x, f"{path}[{i}]", required=True) or "" for i, x in enumerate(self.items(raw, path))
        )


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
    top = r.mapping(raw, "", _TOP)
    name = r.text(top.get("name"), "name") or Path(file).stem
    if "config" not in top:
        raise r.fail("config", "is required: the queue configuration (YuniKorn queues.yaml schema)")
    try:
        config = parse_config(top["config"], source=f"{file}: config")
    except ConfigError as exc:
        first = exc.issues[0]
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        hint = f" Hint: {first.hint}" if first.hint else ""
        raise r.fail(f"config.{first.path}", f"{first.message}{more}.{hint}") from None

    nodes: list[NodeSpec] = []
    for i, item in enumerate(r.items(top.get("nodes"), "nodes")):
        at = f"nodes[{i}]"
        n = r.mapping(item, at, _NODE)
        node_name = r.text(n.get("name"), f"{at}.name", required=True) or ""
        labels = r.mapping(n.get("labels"), f"{at}.labels", tuple(n.get("labels") or ()))
        nodes.append(
            NodeSpec(
                node_name,
                r.resources(n.get("capacity"), f"{at}.capacity"),
                {str(k): str(v) for k, v in labels.items()},
                r.boolean(n.get("schedulable"), f"{at}.schedulable", True),
            )
        )
    node_names = [n.name for n in nodes]
    _unique(r, node_names, "nodes", "node")

    apps: list[AppSpec] = []
    for i, item in enumerate(r.items(top.get("apps"), "apps")):
        at = f"apps[{i}]"
        a = r.mapping(item, at, _APP)
        gang = None
        if a.get("gang") is not None:
            g = r.mapping(a["gang"], f"{at}.gang", _GANG)
            style = (r.text(g.get("style"), f"{at}.gang.style") or "soft").lower()
            if style not in ("soft", "hard"):
                raise r.fail(f"{at}.gang.style", f"must be soft or hard, got {style!r}")
            timeout_raw = g.get("timeout")
            if isinstance(timeout_raw, str):
                try:
                    timeout = parse_duration(timeout_raw)
                except ValueError as exc:
                    raise r.fail(f"{at}.gang.timeout", str(exc)) from None
            else:
                timeout = r.number(timeout_raw, f"{at}.gang.timeout", DEFAULT_GANG_TIMEOUT)
            span = r.boolean(g.get("span_regions"), f"{at}.gang.span_regions", False)
            gang = GangSpec(style, timeout, span)
        tags = r.mapping(a.get("tags"), f"{at}.tags", tuple(a.get("tags") or ()))
        apps.append(
            AppSpec(
                r.text(a.get("id"), f"{at}.id", required=True) or "",
                r.text(a.get("queue"), f"{at}.queue"),
                r.text(a.get("user"), f"{at}.user") or "anonymous",
                r.strings(a.get("groups"), f"{at}.groups"),
                {str(k): str(v) for k, v in tags.items()},
                gang,
            )
        )
    _unique(r, [a.id for a in apps], "apps", "app")

    running: list[RunningSpec] = []
    for i, item in enumerate(r.items(top.get("running"), "running")):
        at = f"running[{i}]"
        x = r.mapping(item, at, _RUNNING)
        node = r.text(x.get("node"), f"{at}.node", required=True) or ""
        if node not in node_names:
            raise r.fail(f"{at}.node", f"refers to node {node!r}, which is not in nodes")
        running.append(
            RunningSpec(
                id=r.text(x.get("id"), f"{at}.id", required=True) or "",
                app=r.text(x.get("app"), f"{at}.app", required=True) or "",
                node=node,
                resources=r.resources(x.get("resources"), f"{at}.resources"),
                queue=r.text(x.get("queue"), f"{at}.queue"),
                priority=r.integer(x.get("priority"), f"{at}.priority", 0),
                age=r.number(x.get("age"), f"{at}.age", 0.0),
                preemptible=r.boolean(x.get("preemptible"), f"{at}.preemptible", True),
                originator=r.boolean(x.get("originator"), f"{at}.originator", False),
                elastic=r.boolean(x.get("elastic"), f"{at}.elastic", False),
            )
        )

    pending: list[PendingSpec] = []
    for i, item in enumerate(r.items(top.get("pending"), "pending")):
        at = f"pending[{i}]"
        x = r.mapping(item, at, _PENDING)
        required = r.text(x.get("node"), f"{at}.node")
        if required is not None and required not in node_names:
            raise r.fail(f"{at}.node", f"refers to node {required!r}, which is not in nodes")
        pending.append(
            PendingSpec(
                id=r.text(x.get("id"), f"{at}.id", required=True) or "",
                app=r.text(x.get("app"), f"{at}.app", required=True) or "",
                resources=r.resources(x.get("resources"), f"{at}.resources"),
                gpu_types=r.strings(x.get("gpu_types"), f"{at}.gpu_types"),
                priority=r.integer(x.get("priority"), f"{at}.priority", 0),
                queue=r.text(x.get("queue"), f"{at}.queue"),
                age=r.number(x.get("age"), f"{at}.age", 0.0),
                preempt_others=r.boolean(x.get("preempt_others"), f"{at}.preempt_others", True),
                node=required,
            )
        )
    _unique(r, [x.id for x in running] + [x.id for x in pending], "running/pending", "allocation or ask")

    _check_running_queues(r, config, apps, running)

    run = r.mapping(top.get("run"), "run", _RUN)
    seconds = r.integer(run.get("seconds"), "run.seconds", 0)
    if seconds < 0:
        raise r.fail("run.seconds", "must not be negative")
    expect = r.mapping(top.get("expect"), "expect", _EXPECT)
    _check_expect(r, expect, apps, running, pending)
    return Scenario(
        name=name,
        file=file,
        description=r.text(top.get("description"), "description") or "",
        config=config,
        nodes=nodes,
        apps=apps,
        running=running,
        pending=pending,
        seconds=seconds,
        expect=expect,
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
    expect: dict[str, Any],
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

    if "placed" in expect:
        placed = r.mapping(expect["placed"], "expect.placed", tuple(expect["placed"] or ()))
        need(placed.keys(), ask_ids, "expect.placed", "pending ask")
    if "pending" in expect:
        need(r.items(expect["pending"], "expect.pending"), ask_ids, "expect.pending", "pending ask")
    if "preempted" in expect:
        need(r.items(expect["preempted"], "expect.preempted"), alloc_ids, "expect.preempted", "allocation")
    if "preempted_count" in expect:
        pc = r.mapping(expect["preempted_count"], "expect.preempted_count", ("count", "among"))
        r.integer(pc.get("count"), "expect.preempted_count.count", 0)
        need(
            r.items(pc.get("among"), "expect.preempted_count.among"),
            alloc_ids,
            "expect.preempted_count.among",
            "allocation",
        )
    for key in ("placed_count", "rejected", "queue", "state"):
        if key in expect:
            m = r.mapping(expect[key], f"expect.{key}", tuple(expect[key] or ()))
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
