"""Reading a queue configuration file (YAML) into a validated ``Config``: the edge around ``parse_config``.

Everything that can go wrong comes out as one ``ConfigError`` naming the file: a missing or
unreadable file, a YAML syntax error (with its line and column), a key given twice, and every
validation issue of ``gpupool.config`` with the line of the offending key when it can be
found. This is the only module of the config path that imports ``yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from gpupool.config import ConfigError, ConfigIssue, parse_config
from gpupool.core.config import Config

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "duplicate_keys",
    "load_config",
    "load_config_text",
    "read_yaml",
    "with_lines",
]


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the configuration file at ``path``. Raises ConfigError."""
    source = str(path)
    return load_config_text(_read(Path(path), source), source)


def load_config_text(text: str, source: str = "<config>") -> Config:
    """Validate a configuration given as YAML text. Raises ConfigError."""
    raw, node = read_yaml(text, source)
    issues = duplicate_keys(node)
    try:
        config = parse_config(raw, source)
    except ConfigError as exc:
        issues += with_lines(exc, node).issues
        raise ConfigError(issues, source) from None
    if issues:
        raise ConfigError(issues, source)
    return config


def with_lines(error: ConfigError, node: yaml.Node | None, prefix: tuple[str | int, ...] = ()) -> ConfigError:
    """The same error with each issue's source line filled in from the YAML node tree.

    ``prefix`` is the key path of the configuration inside the document, for a configuration
    embedded in a larger file (e.g. ``("config",)`` in a scenario).
    """
    issues = []
    for issue in error.issues:
        line = _line_of(node, (*prefix, *issue.loc))
        issues.append(dataclasses.replace(issue, line=line) if line is not None else issue)
    return ConfigError(issues, error.source)


def read_yaml(text: str, source: str = "<config>") -> tuple[object, yaml.Node | None]:
    """Parse YAML text safely: the plain data and its node tree (for line numbers).

    Raises ConfigError on a syntax error, with its line and column.
    """
    if len(text) > MAX_TEXT:
        issue = ConfigIssue("", f"the file is {len(text)} characters long, more than {MAX_TEXT}")
        raise ConfigError([issue], source)
    try:
        _check_shape(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        issue = ConfigIssue(where, f"YAML syntax error: {problem}", _yaml_hint(f"{exc.context} {problem}"))
        raise ConfigError([issue], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"YAML error: {exc}")], source) from None
    except _TooBig as exc:
        raise ConfigError([ConfigIssue(exc.where, str(exc), exc.hint)], source) from None
    except ValueError as exc:  # a scalar the YAML constructor cannot hold (an integer of 5000 digits)
        raise ConfigError([ConfigIssue("", f"YAML error: {exc}")], source) from None
    return raw, node


# Limits of a configuration document, checked on the parser's events before anything is built:
# PyYAML builds nested collections recursively (a few hundred levels end in a RecursionError),
# and aliases let a small file stand for an exponentially large document (a "billion laughs").
MAX_TEXT = 4 * 1024 * 1024  # characters
MAX_DEPTH = 64  # nested mappings and sequences
MAX_NODES = 200_000  # nodes of the document with every alias expanded


class _TooBig(Exception):
    def __init__(self, message: str, where: str, hint: str) -> None:
        super().__init__(message)
        self.where = where
        self.hint = hint


def _check_shape(text: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or larger than MAX_NODES once its aliases
    are expanded; both without recursion and without expanding anything."""
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    stack: list[list[Any]] = []  # open collections: [anchor, expanded size so far]
    total = 0

    def count(n: int, mark: yaml.Mark | None) -> None:
        nonlocal total
        total += n
        if stack:
            stack[-1][1] += n
        if total > MAX_NODES:
            raise _TooBig(
                f"the document expands to more than {MAX_NODES} values (through its aliases *name)",
                _where(mark),
                "a queue configuration needs no aliases that repeat large parts; write it out",
            )

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _TooBig(
                    f"nested more than {MAX_DEPTH} levels deep",
                    _where(event.start_mark),
                    "a queue configuration is a few levels of queues: check the indentation",
                )
            count(1, event.start_mark)
            stack.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
            if stack:
                stack[-1][1] += size
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            count(1, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            count(sizes.get(event.anchor or "", 1), event.start_mark)


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _read(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        issue = ConfigIssue("", "file not found", "check the path; a YuniKorn config is usually queues.yaml")
    except IsADirectoryError:
        issue = ConfigIssue("", "is a directory, not a configuration file")
    except PermissionError:
        issue = ConfigIssue("", "permission denied")
    except UnicodeDecodeError as exc:
        issue = ConfigIssue("", f"not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        issue = ConfigIssue("", f"cannot read the file: {exc.strerror or exc}")
    raise ConfigError([issue], source)


def _yaml_hint(problem: str) -> str:
    if "found character '\\t'" in problem or "tab" in problem:
        return "YAML indentation must use spaces, not tabs"
    if "alias" in problem or "'*'" in problem:
        return 'quote the wildcard: submitacl: "*"'
    if "mapping values are not allowed" in problem:
        return "check the indentation, and quote values that contain ': '"
    return ""


def duplicate_keys(node: yaml.Node | None, loc: tuple[str | int, ...] = ()) -> list[ConfigIssue]:
    """Keys given twice in one mapping, which safe_load would silently resolve to the last one."""
    out: list[ConfigIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if isinstance(key_node, yaml.ScalarNode) and key in seen:
                out.append(
                    ConfigIssue(
                        _loc_path((*loc, key)),
                        f"key `{key}` appears twice in the same mapping",
                        "keep one; YAML would silently use the last",
                        (*loc, key),
                        key_node.start_mark.line + 1,
                    )
                )
            seen.add(key)
            out.extend(duplicate_keys(value_node, (*loc, key)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(duplicate_keys(item, (*loc, i)))
    return out


def _loc_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest node along ``loc`` (a key's own line for mapping entries)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if str(kv[0].value) == str(part)), None)
            if match is None:
                match = next((kv for kv in node.value if str(kv[0].value).lower() == str(part).lower()), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
