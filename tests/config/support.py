"""Helpers shared by the queue configuration tests (parse a mapping, find a queue, collect issues)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpupool.config import ConfigError, ConfigIssue, parse_config
from gpupool.core.config import Config, QueueConfig

YUNIKORN_DIR = Path(__file__).resolve().parents[2] / "data" / "yunikorn-configs"
YUNIKORN_CONFIGS = sorted(YUNIKORN_DIR.glob("*.yaml"))
GI = 2**30


def cfg(queues: list[dict[str, Any]], **partition: Any) -> dict[str, Any]:
    """A one-partition config whose root has the given children."""
    return {"partitions": [{"name": "default", "queues": [{"name": "root", "queues": queues}], **partition}]}


def parse(raw: object) -> Config:
    return parse_config(raw, "test.yaml")


def root(raw: object) -> QueueConfig:
    return parse(raw).partition().root


def queue(q: QueueConfig, path: str) -> QueueConfig:
    parts = path.split(".")
    assert parts[0] == q.name
    for name in parts[1:]:
        q = next(c for c in q.queues if c.name == name)
    return q


def issues(raw: object) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value.issues


def only_issue(raw: object) -> ConfigIssue:
    found = issues(raw)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def paths(raw: object) -> list[str]:
    return [i.path for i in issues(raw)]
