"""The table "Conformance with yunikorn-core's tests" in docs/scheduling.md matches the translations.

Counts per yunikorn-core test file: the ``yk-*`` scenario files of ``tests/scenarios`` whose
description names the file, plus the cases of ``tests/config/test_yunikorn_configcheck.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from config.test_yunikorn_configcheck import CASES

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "scheduling.md"
FOLDERS = (HERE / "scenarios",)


def _translated() -> Counter[str]:
    counts: Counter[str] = Counter()
    for case in CASES:
        go_file = case.go.split("::")[0] if "::" in case.go else "configvalidator_test.go"
        counts["pkg/scheduler/" + go_file if "/" in go_file else "pkg/common/configs/" + go_file] += 1
    for folder in FOLDERS:
        for path in folder.glob("yk-*.yaml"):
            description = str(yaml.safe_load(path.read_text())["description"])
            found = re.search(r"yunikorn-core (pkg/\S+?\.go)::", description)
            assert found, f"{path.name} must name its yunikorn-core test file and test"
            counts[found.group(1)] += 1
    return counts


def _documented() -> dict[str, int]:
    rows = re.findall(r"^\| `(pkg/[^`]+)` \| (\d+) \|", DOC.read_text(), flags=re.MULTILINE)
    return {name: int(count) for name, count in rows}


def test_the_documented_counts_are_the_translations() -> None:
    assert _documented() == dict(_translated())


def test_the_documented_total_is_the_sum() -> None:
    total = re.search(r"^\| \*\*total\*\* \| \*\*(\d+)\*\* \|", DOC.read_text(), flags=re.MULTILINE)
    assert total is not None
    assert int(total.group(1)) == sum(_translated().values())
