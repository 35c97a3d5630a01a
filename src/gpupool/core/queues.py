"""The queue tree at run time: quotas, usage, fair share, dynamic priority, limits, ACLs.

A ``Queue`` is built from a ``QueueConfig`` (static, "managed") or created by a placement rule
from its nearest ancestor's child template (dynamic). Each queue keeps the sum of allocations
of its subtree (``allocated``), of pending asks (``pending``) and of allocations chosen as
preemption victims that have not stopped yet (``preempting``). The scheduler updates them
along the path from a leaf to the root; nothing here scans the tree per ask.

Semantics follow Apache YuniKorn (see ``shared/research/yunikorn.md``):

* ``max`` caps the subtree's allocations; a type the max does not list is unlimited there.
* Fair share = the largest over allocated types of usage / guaranteed, falling back to usage /
  the nearest max up the tree (the root's is the cluster's capacity).
* Properties are inherited from the parent, except ``priority.policy`` / ``priority.offset``
  (reset) and ``preemption.policy`` (only ``disabled`` propagates); each ``session.*`` property
  on its own (``sessions``, a ``SessionLimits``).
* Queue priority is dynamic: a leaf's is the highest priority of its pending asks, a parent's
  the highest of its children's, plus ``priority.offset``; a ``fence`` queue shows only its offset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from gpupool.core.acl import ACL
from gpupool.core.config import (
    DEFAULT_PREEMPTION_DELAY,
    PROP_PREEMPTION_POLICY,
    PROP_PRIORITY_OFFSET,
    PROP_PRIORITY_POLICY,
    ChildTemplate,
    Limit,
    QueueConfig,
    QueueProperties,
    SessionLimits,
    inherit_session_limits,
)
from gpupool.core.resources import Resources, add_into, sub_into

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
RECOVERY_QUEUE = "@recovery@"
_NOT_INHERITED = (PROP_PRIORITY_POLICY, PROP_PRIORITY_OFFSET, PROP_PREEMPTION_POLICY)


def clamp32(value: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, value))


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The configured part of a queue (static from config, or from a child template)."""

    guaranteed: Resources | None = None
    max: Resources | None = None
    properties: dict[str, str] | None = None
    submit_acl: str | None = None
    admin_acl: str | None = None
    max_applications: int | None = None
    limits: tuple[Limit, ...] = ()
    child_template: ChildTemplate | None = None
    is_parent: bool = False
    typed: QueueProperties = field(default_factory=QueueProperties)  # parsed once with the config


class Queue:
    """One queue of the tree at run time: its settings, its subtree's usage and its dynamic priority."""

    __slots__ = (
        "_ancestors",
        "_prio",
        "admin_acl",
        "allocated",
        "child_template",
        "children",
        "depth",
        "dynamic",
        "guaranteed",
        "is_leaf",
        "limits",
        "max",
        "max_applications",
        "name",
        "parent",
        "path",
        "pending",
        "pending_asks",
        "pending_prio",
        "preempting",
        "preemption_delay",
        "preemption_policy",
        "priority_offset",
        "priority_policy",
        "properties",
        "running_apps",
        "sessions",
        "sort_policy",
        "sort_priority",
        "submit_acl",
        "version",
    )

    def __init__(
        self, name: str, parent: Queue | None, settings: QueueSettings, *, dynamic: bool = False
    ) -> None:
        self.name = name
        self.parent = parent
        self._ancestors: tuple[Queue, ...] = (self,) if parent is None else (self, *parent.ancestors())
        self.path: str = name if parent is None else f"{parent.path}.{name}"
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.dynamic = dynamic
        self.children: dict[str, Queue] = {}
        self.is_leaf = not settings.is_parent
        self.allocated: Resources = {}
        self.pending: Resources = {}
        self.preempting: Resources = {}
        self.pending_asks = 0
        self.pending_prio: Counter[int] = Counter()  # leaf: priorities of pending asks
        self._prio: int | None = None  # cached dynamic priority; None = recompute
        self.running_apps = 0
        self.version = 0  # bumped when asks are added: the scheduler's quiet-leaf skip
        self.apply(settings)

    def apply(self, settings: QueueSettings) -> None:
        """Take (new) configured settings; usage is kept."""
        self.guaranteed = dict(settings.guaranteed) if settings.guaranteed else None
        self.max = dict(settings.max) if settings.max else None
        self.submit_acl = ACL.parse(settings.submit_acl)
        self.admin_acl = ACL.parse(settings.admin_acl)
        self.max_applications = settings.max_applications
        self.limits = settings.limits
        self.child_template = settings.child_template
        if settings.is_parent:
            self.is_leaf = False
        own = dict(settings.properties or {})
        inherited: dict[str, str] = {}
        if self.parent is not None:
            for k, v in self.parent.properties.items():
                if k not in _NOT_INHERITED:
                    inherited[k] = v
            if self.parent.preemption_policy == "disabled":
                inherited[PROP_PREEMPTION_POLICY] = "disabled"
        inherited.update(own)
        self.properties: dict[str, str] = inherited
        self.refresh_properties(settings.typed)

    def refresh_properties(self, own: QueueProperties) -> None:
        """The typed properties: own, else inherited as ``properties`` are, else the defaults."""
        up = self.parent
        self.sort_policy: str = own.sort_policy or (up.sort_policy if up is not None else "fifo")
        self.sort_priority: bool = (
            own.sort_priority if own.sort_priority is not None else up is None or up.sort_priority
        )
        self.priority_policy = own.priority_policy or "default"
        self.priority_offset = clamp32(own.priority_offset or 0)
        disabled = up is not None and up.preemption_policy == "disabled"
        self.preemption_policy: str = own.preemption_policy or ("disabled" if disabled else "default")
        if own.preemption_delay is not None:
            self.preemption_delay = own.preemption_delay
        else:
            self.preemption_delay = up.preemption_delay if up is not None else DEFAULT_PREEMPTION_DELAY
        # What a notebook session in this queue may ask for (core/sessions.py resolves it).
        self.sessions: SessionLimits = inherit_session_limits(up.sessions if up is not None else None, own)

    # --- tree -----------------------------------------------------------------------------

    def ancestors(self) -> tuple[Queue, ...]:
        """This queue and its ancestors, leaf first (kept: a queue's parent never changes)."""
        return self._ancestors

    def is_under(self, other: Queue) -> bool:
        q: Queue | None = self
        while q is not None:
            if q is other:
                return True
            q = q.parent
        return False

    def leaves(self) -> list[Queue]:
        if self.is_leaf:
            return [self]
        out: list[Queue] = []
        for child in self.children.values():
            out.extend(child.leaves())
        return out

    def walk(self) -> list[Queue]:
        out = [self]
        for child in self.children.values():
            out.extend(child.walk())
        return out

    # --- usage ----------------------------------------------------------------------------

    def add_allocated(self, res: Resources) -> None:
        q: Queue | None = self
        while q is not None:
            add_into(q.allocated, res)
            q = q.parent

    def remove_allocated(self, res: Resources) -> None:
        q: Queue | None = self
        while q is not None:
            sub_into(q.allocated, res)
            q = q.parent

    def add_pending(self, res: Resources, priority: int) -> None:
        self.version += 1
        self.pending_prio[priority] += 1
        q: Queue | None = self
        while q is not None:
            add_into(q.pending, res)
            q.pending_asks += 1
            q._prio = None
            q = q.parent

    def remove_pending(self, res: Resources, priority: int) -> None:
        self.pending_prio[priority] -= 1
        if self.pending_prio[priority] <= 0:
            del self.pending_prio[priority]
        q: Queue | None = self
        while q is not None:
            sub_into(q.pending, res)
            q.pending_asks -= 1
            q._prio = None
            q = q.parent

    def add_preempting(self, res: Resources) -> None:
        q: Queue | None = self
        while q is not None:
            add_into(q.preempting, res)
            q = q.parent

    def remove_preempting(self, res: Resources) -> None:
        q: Queue | None = self
        while q is not None:
            sub_into(q.preempting, res)
            q = q.parent

    def set_running(self, delta: int) -> None:
        q: Queue | None = self
        while q is not None:
            q.running_apps += delta
            q = q.parent

    # --- ordering -------------------------------------------------------------------------

    def priority(self) -> int:
        """Dynamic queue priority (YuniKorn ``priority.policy`` / ``priority.offset``)."""
        if self._prio is not None:
            return self._prio
        if self.priority_policy == "fence":
            value = self.priority_offset
        else:
            if self.is_leaf:
                base = max(self.pending_prio) if self.pending_prio else 0
            else:
                prios = [c.priority() for c in self.children.values() if c.pending_asks > 0]
                base = max(prios) if prios else 0
            value = clamp32(base + self.priority_offset)
        self._prio = value
        return value

    def fair_max(self, resource: str, capacity: Resources) -> int:
        """The nearest configured max of ``resource`` walking up; the root's is the cluster's."""
        q: Queue | None = self
        while q is not None:
            if q.max is not None and resource in q.max:
                return q.max[resource]
            q = q.parent
        return capacity.get(resource, 0)

    def fair_share(self, capacity: Resources) -> float:
        """Largest over allocated types of usage / guaranteed (else usage / nearest max)."""
        share = 0.0
        for t, used in self.allocated.items():
            if used <= 0:
                continue
            if self.guaranteed is not None and t in self.guaranteed:
                denom = self.guaranteed[t]
            else:
                denom = self.fair_max(t, capacity)
            s = 1.0 if denom <= 0 else used / denom
            if s > share:
                share = s
        return share

    def pending_share(self, capacity: Resources) -> float:
        """Largest over types of pending / cluster capacity: the tie-break "larger pending first"."""
        share = 0.0
        for t, v in self.pending.items():
            c = capacity.get(t, 0)
            if v > 0 and c > 0 and v / c > share:
                share = v / c
        return share

    # --- guarantees -----------------------------------------------------------------------

    def remaining_guaranteed(self, stop: Queue | None = None) -> Resources | None:
        """Own or inherited remaining guarantee: per type, the least ``guaranteed - used`` on the
        path from this queue up to (not including) ``stop``. None if nothing there is guaranteed."""
        out: Resources | None = None
        q: Queue | None = self
        while q is not None and q is not stop:
            if q.guaranteed:
                out = out if out is not None else {}
                for t, g in q.guaranteed.items():
                    left = g - (q.allocated.get(t, 0) - q.preempting.get(t, 0))
                    if t not in out or left < out[t]:
                        out[t] = left
            q = q.parent
        return out


def settings_from_config(cfg: QueueConfig) -> QueueSettings:
    return QueueSettings(
        guaranteed=cfg.guaranteed,
        max=cfg.max,
        properties=cfg.properties,
        submit_acl=cfg.submit_acl,
        admin_acl=cfg.admin_acl,
        max_applications=cfg.max_applications,
        limits=cfg.limits,
        child_template=cfg.child_template,
        is_parent=cfg.parent or bool(cfg.queues),
        typed=cfg.settings,
    )


def settings_from_template(template: ChildTemplate | None, *, is_parent: bool) -> QueueSettings:
    if template is None:
        return QueueSettings(is_parent=is_parent)
    return QueueSettings(
        guaranteed=template.guaranteed,
        max=template.max,
        properties=template.properties,
        max_applications=template.max_applications,
        is_parent=is_parent,
        typed=template.settings,
    )


def build_tree(root_cfg: QueueConfig, root_limits: tuple[Limit, ...] = ()) -> dict[str, Queue]:
    """Build the static tree; returns every queue by full path (``root.a.b``)."""
    by_path: dict[str, Queue] = {}

    def build(cfg: QueueConfig, parent: Queue | None) -> None:
        settings = settings_from_config(cfg)
        if parent is None:
            limits = settings.limits or root_limits
            settings = replace(settings, limits=limits, is_parent=True)
        q = Queue(cfg.name, parent, settings)
        if parent is not None:
            parent.children[cfg.name] = q
        by_path[q.path] = q
        for child in cfg.queues:
            build(child, q)

    build(root_cfg, None)
    return by_path
