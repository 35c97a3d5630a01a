"""The scheduling core and the engine stay pure: standard library only, no clock, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "gpupool"
ALLOWED = {
    "__future__",
    "bisect",
    "collections",
    "dataclasses",
    "difflib",
    "enum",
    "heapq",
    "math",
    "operator",
    "re",
    "typing",
}
FORBIDDEN_NAMES = {"time", "datetime", "random", "uuid", "os", "socket", "subprocess", "threading"}


@pytest.mark.parametrize(
    "path",
    sorted([*SRC.glob("core/*.py"), *SRC.glob("engine/*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_module_imports_only_the_standard_library_and_reads_no_clock(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "gpupool":
                assert name.startswith(("gpupool.core", "gpupool.engine")), f"{path.name} imports {name}"
                continue
            assert top in ALLOWED and top not in FORBIDDEN_NAMES, f"{path.name} imports {name}"
