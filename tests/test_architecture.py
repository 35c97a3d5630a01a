"""The shape rules of docs/architecture.md that neither ruff, mypy nor import-linter checks.

Every module of ``src/gpupool`` stays under 700 lines and says what lives in it; every public
class says what it is for; no test file grows past about 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gpupool"
MAX_MODULE_LINES = 700
MAX_TEST_LINES = 650  # "about 600"

MODULES = sorted(SRC.rglob("*.py"))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_the_rules_see_the_source() -> None:
    assert len(MODULES) > 50


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_is_small_and_documented(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert _lines(path) <= MAX_MODULE_LINES, f"{path.name} has {_lines(path)} lines: split it"
    assert ast.get_docstring(tree), f"{path.name} has no module docstring saying what lives there"
    undocumented = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and not ast.get_docstring(node)
    ]
    assert not undocumented, f"{path.name}: public classes without a docstring: {undocumented}"


def test_test_files_stay_readable() -> None:
    big = {
        str(p.relative_to(ROOT)): _lines(p)
        for p in (ROOT / "tests").rglob("*.py")
        if _lines(p) > MAX_TEST_LINES
    }
    assert not big, f"test files over {MAX_TEST_LINES} lines, split them: {big}"


def test_tests_mirror_the_source_packages() -> None:
    """Each package of src/gpupool with its own tests has them in the folder of the same name."""
    top_level = sorted(p.name for p in (ROOT / "tests").glob("test_*.py"))
    # What stays at the top: the scenario runner (src/gpupool/scenario.py), the docs' conformance
    # table and these rules.
    assert top_level == ["test_architecture.py", "test_scenarios.py", "test_yunikorn_conformance_doc.py"]
