"""The queue configuration: gpupool's catalog of standard sizes."""

from __future__ import annotations

import pytest

from gpupool.config import DEFAULT_SIZES

from .support import GI, cfg, only_issue, parse

# ---- sizes ------------------------------------------------------------------------------------


def test_default_sizes_when_absent() -> None:
    sizes = parse(cfg([])).sizes
    assert list(sizes) == ["small", "medium", "large", "xlarge"]
    assert sizes == DEFAULT_SIZES
    for name, gpus in (("small", 1), ("medium", 2), ("large", 4), ("xlarge", 8)):
        shapes = sizes[name].shapes
        assert len(shapes) >= 2
        assert all(s.resources["gpu"] == gpus * 1000 for s in shapes)  # milli-GPU
        assert shapes[-1].gpu_types == ()  # the last resort: any GPU type
        assert all(s.gpu_types for s in shapes[:-1])
    small = sizes["small"].shapes[0].resources
    assert small == {"gpu": 1000, "vcore": 8000, "memory": 64 * GI}
    assert sizes["xlarge"].shapes[0].gpu_types == ("H100",)


def test_custom_sizes_replace_the_defaults() -> None:
    raw = cfg([])
    raw["sizes"] = {
        "tiny": [
            {"resources": {"gpu": 1, "vcore": 2, "memory": "8Gi"}, "gpu_types": ["L4"]},
            {"resources": {"gpu": 1}},
        ],
        "big": {
            "description": "a whole node",
            "shapes": [{"resources": {"gpu": 8}, "gpu_types": ["H100", "A100"]}],
        },
    }
    sizes = parse(raw).sizes
    assert list(sizes) == ["tiny", "big"]
    assert sizes["tiny"].shapes[0].resources == {"gpu": 1000, "vcore": 2000, "memory": 8 * GI}
    assert sizes["tiny"].shapes[0].gpu_types == ("L4",) and sizes["tiny"].shapes[1].gpu_types == ()
    assert sizes["big"].description == "a whole node"
    assert sizes["big"].shapes[0].gpu_types == ("H100", "A100")


@pytest.mark.parametrize(
    ("sizes", "path"),
    [
        ({"tiny": []}, "sizes.tiny"),
        ({"tiny": [{"resources": {"vcore": 2}, "gpu_types": ["L4"]}]}, "sizes.tiny[0].gpu_types"),
        ({"tiny": [{"gpu_types": ["L4"]}]}, "sizes.tiny[0]"),
        ({"tiny": [{"resources": {"gpu": "x"}}]}, "sizes.tiny[0].resources.gpu"),
        ({"tiny": [{"resources": {"gpu": 0}}]}, "sizes.tiny[0].resources"),
        ({"tiny": [{"resources": {"gpu": 1}, "gpus": 1}]}, "sizes.tiny[0].gpus"),
        ({"tiny": [{"resources": {"gpu": 1.5}}]}, "sizes.tiny[0].resources.gpu"),  # neither share nor whole
        ({"tiny": {"description": "x"}}, "sizes.tiny"),
        ([1, 2], "sizes"),
    ],
)
def test_bad_sizes(sizes: object, path: str) -> None:
    raw = cfg([])
    raw["sizes"] = sizes
    assert only_issue(raw).path == path


def test_a_size_may_be_a_share_of_one_gpu() -> None:
    raw = cfg([])
    raw["sizes"] = {"half": [{"resources": {"gpu": 0.5, "vcore": 4}}]}
    assert parse(raw).sizes["half"].shapes[0].resources == {"gpu": 500, "vcore": 4000}
