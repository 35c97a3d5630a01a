"""``gpupool config ...``: check a queue configuration (YuniKorn ``queues.yaml``) and show what it means."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from gpupool.config import ConfigError
from gpupool.configfile import load_config
from gpupool.core.acl import ACL
from gpupool.core.config import Config, Limit, PartitionConfig, PlacementRule, QueueConfig, Size
from gpupool.core.resources import format_resources

config_app = typer.Typer(help="Queue configuration (YuniKorn queues.yaml).", no_args_is_help=True)


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The queue configuration file (YuniKorn queues.yaml).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Validate FILE and print the queue tree it defines; exit 1 listing every problem if it is invalid."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        if json_output:
            typer.echo(json.dumps({"file": str(file), "valid": False, "errors": _issues_json(exc)}, indent=2))
        else:
            for line in exc.lines():
                typer.echo(line, err=True)
            count = len(exc.issues)
            typer.echo(f"{file}: invalid ({count} problem{'s' if count != 1 else ''})", err=True)
        raise typer.Exit(1) from None
    if json_output:
        typer.echo(json.dumps({"file": str(file), "valid": True, "config": _config_json(config)}, indent=2))
        return
    console = Console(highlight=False)
    queues = sum(_count_queues(p.root) for p in config.partitions)
    console.print(
        Text.assemble(
            ("OK ", "bold green"),
            f"{file}: {len(config.partitions)} partition{'s' if len(config.partitions) != 1 else ''}, "
            f"{queues} queue{'s' if queues != 1 else ''}",
        )
    )
    for partition in config.partitions:
        console.print(partition_tree(partition))
    console.print(sizes_tree(config.sizes))


# ---- rendering -------------------------------------------------------------------------------


def partition_tree(p: PartitionConfig) -> Tree:
    """A rich Tree of one partition: its settings, placement rules, and the queue tree."""
    weights = p.node_sort_policy.resource_weights
    label = Text.assemble(
        ("partition ", "bold"),
        (p.name, "bold cyan"),
        f"  node sort: {p.node_sort_policy.type}",
        f" (weights {_weights(weights)})" if weights is not None else "",
        f"  preemption: {'on' if p.preemption_enabled else 'off'}",
        f"  quota preemption: {'on, not enforced by gpupool' if p.quota_preemption_enabled else 'off'}",
    )
    tree = Tree(label)
    rules = tree.add(Text("placement rules", style="bold"))
    if not p.placement_rules:
        rules.add(Text("none: the implicit `provided` rule (the queue named at submission)", style="dim"))
    for i, rule in enumerate(p.placement_rules, 1):
        rules.add(Text(f"{i}. {describe_rule(rule)}"))
    _add_queue(tree, p.root)
    return tree


def sizes_tree(sizes: dict[str, Size]) -> Tree:
    tree = Tree(Text("sizes", style="bold"))
    if not sizes:
        tree.add(Text("none", style="dim"))
    for size in sizes.values():
        node = tree.add(
            Text.assemble((size.name, "bold cyan"), f"  {size.description}" if size.description else "")
        )
        for i, shape in enumerate(size.shapes, 1):
            types = ", ".join(shape.gpu_types) if shape.gpu_types else "any GPU type"
            node.add(Text(f"{i}. {format_resources(shape.resources)} on {types}"))
    return tree


def describe_rule(rule: PlacementRule) -> str:
    """One line for a placement rule, its parent rule chain and filter."""
    text = rule.name + (f" {rule.value}" if rule.value else "")
    text += "  create" if rule.create else "  no create"
    if rule.parent is not None:
        text += f"  under [{describe_rule(rule.parent)}]"
    if rule.filter is not None:
        f = rule.filter
        who = []
        if f.users:
            who.append("users " + ", ".join(f.users))
        if f.groups:
            who.append("groups " + ", ".join(f.groups))
        text += f"  filter: {f.type} " + ("; ".join(who) if who else "everyone")
    return text


def describe_limit(limit: Limit) -> str:
    who = []
    if limit.users:
        who.append("users " + ", ".join(limit.users))
    if limit.groups:
        who.append("groups " + ", ".join(limit.groups))
    what = []
    if limit.max_resources:
        what.append(f"max {format_resources(limit.max_resources)}")
    if limit.max_applications is not None:
        what.append(f"maxapplications {limit.max_applications}")
    name = f'"{limit.description}" ' if limit.description else ""
    return f"limit {name}{'; '.join(who)}: {', '.join(what)} each"


def _add_queue(parent: Tree, q: QueueConfig, path: str = "") -> None:
    qpath = f"{path}.{q.name}" if path else q.name
    label = Text()
    label.append(q.name, style="bold")
    label.append("  parent" if q.parent else "  leaf", style="dim")
    if q.guaranteed:
        label.append(f"  guaranteed {format_resources(q.guaranteed)}", style="green")
    if q.max:
        label.append(f"  max {format_resources(q.max)}", style="yellow")
    details = []
    if q.max_applications is not None:
        details.append(f"maxapplications {q.max_applications}")
    if q.submit_acl is not None:
        details.append(f"submit: {ACL.parse(q.submit_acl).describe()}")
    if q.admin_acl is not None:
        details.append(f"admin: {ACL.parse(q.admin_acl).describe()}")
    if qpath == "root" and q.submit_acl is None and q.admin_acl is None:
        details.append("submit: nobody (no ACL on root: set submitacl to let users in)")
    if q.properties:
        details.append(", ".join(f"{k}={v}" for k, v in sorted(q.properties.items())))
    for line in details:
        label.append("\n" + line, style="dim")
    for limit in q.limits:
        label.append("\n" + describe_limit(limit), style="magenta")
    t = q.child_template
    if t is not None:
        parts = []
        if t.guaranteed:
            parts.append(f"guaranteed {format_resources(t.guaranteed)}")
        if t.max:
            parts.append(f"max {format_resources(t.max)}")
        if t.max_applications is not None:
            parts.append(f"maxapplications {t.max_applications}")
        parts.extend(f"{k}={v}" for k, v in sorted(t.properties.items()))
        label.append("\nchild template: " + (", ".join(parts) or "empty"), style="cyan")
    node = parent.add(label)
    for child in q.queues:
        _add_queue(node, child, qpath)


def _weights(weights: dict[str, float] | None) -> str:
    return ", ".join(f"{k}: {v:g}" for k, v in sorted((weights or {}).items())) or "none"


def _count_queues(q: QueueConfig) -> int:
    return 1 + sum(_count_queues(c) for c in q.queues)


def _issues_json(exc: ConfigError) -> list[dict[str, Any]]:
    return [{"path": i.path, "message": i.message, "hint": i.hint, "line": i.line} for i in exc.issues]


def _config_json(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)
