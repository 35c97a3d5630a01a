"""gpupool's `nodepools` addition to the queues.yaml schema."""

from __future__ import annotations

import pytest

from gpupool.config import ConfigError, parse_config
from gpupool.core.config import DEFAULT_BURST_HEADROOM

BASE = {"partitions": [{"name": "default", "queues": [{"name": "root", "submitacl": "*"}]}]}


def config(pools: object) -> dict:
    return {**BASE, "nodePools": pools}


def test_pools_parse_with_units_durations_and_case_insensitive_keys():
    cfg = parse_config(
        config(
            [
                {
                    "name": "h100",
                    "Min": 1,
                    "max": 4,
                    "headroom": {"nodes": 1, "gpus": 8},
                    "idleTimeout": "10m",
                    "instanceTypes": [
                        {
                            "name": "a",
                            "gpuType": "H100",
                            "gpus": 8,
                            "vcore": 96,
                            "memory": "1Ti",
                            "region": "eu",
                            "hourlyCost": 30.5,
                            "bootTime": "2m",
                        },
                        {"name": "cpu", "vcore": "500m"},
                    ],
                }
            ]
        )
    )
    (pool,) = cfg.nodepools
    assert (pool.name, pool.min, pool.max, pool.headroom_nodes, pool.headroom_gpus) == ("h100", 1, 4, 1, 8)
    assert pool.idle_timeout == 600.0
    a, cpu = pool.instance_types
    assert a.capacity() == {"gpu": 8000, "vcore": 96_000, "memory": 2**40}
    assert (a.region, a.hourly_cost, a.boot_time, a.gpu_type) == ("eu", 30.5, 120.0, "H100")
    assert cpu.capacity() == {"vcore": 500, "memory": 64 * 2**30} and cpu.region == "local"


def test_burst_sized_headroom_parses():
    raw = {
        "name": "p",
        "headroom": {"nodes": 1, "window": "15m", "maxNodes": 6},
        "instancetypes": [{"name": "x"}],
    }
    (pool,) = parse_config(config([raw])).nodepools
    assert (pool.headroom_nodes, pool.headroom_window, pool.headroom_max_nodes) == (1, 900.0, 6)
    (fixed,) = parse_config(config([{"name": "p", "instancetypes": [{"name": "x"}]}])).nodepools
    assert (fixed.headroom_window, fixed.headroom_max_nodes, fixed.transfer_cost) == (0.0, 0, 0.0)
    (spans,) = parse_config(
        config([{"name": "p", "transferCost": 3.5, "instancetypes": [{"name": "x"}]}])
    ).nodepools
    assert spans.transfer_cost == 3.5


def test_burst_sized_headroom_takes_the_default_policy_for_keys_left_out():
    d = DEFAULT_BURST_HEADROOM
    raw = {"name": "p", "headroom": {"window": "15m", "maxNodes": 8}, "instancetypes": [{"name": "x"}]}
    (pool,) = parse_config(config([raw])).nodepools
    got = (
        pool.headroom_fit,
        pool.headroom_memory,
        pool.headroom_series,
        pool.headroom_series_min,
        pool.headroom_series_window,
    )
    assert got == (d.fit, d.memory, d.series, d.series_min, d.series_window)
    assert d.memory > 0 and d.series > 0 and d.fit  # the default keeps series headroom, in GPUs
    # memory: 0 (or series: 0) turns the series part off; fit: false counts whole idle nodes.
    raw["headroom"] = {"window": "15m", "maxNodes": 8, "memory": 0, "fit": False, "seriesWindow": "2m"}
    (off,) = parse_config(config([raw])).nodepools
    assert (off.headroom_memory, off.headroom_series, off.headroom_fit) == (0.0, 0.0, False)
    assert off.headroom_series_window == 120.0
    # Without a window there is no burst-sized headroom at all.
    (fixed,) = parse_config(
        config([{"name": "p", "headroom": {"nodes": 2}, "instancetypes": [{"name": "x"}]}])
    ).nodepools
    assert (fixed.headroom_nodes, fixed.headroom_memory, fixed.headroom_fit) == (2, 0.0, False)


def test_series_and_fit_headroom_parse():
    raw = {
        "name": "p",
        "headroom": {
            "window": "15m",
            "maxNodes": 8,
            "memory": "4h",
            "series": 0.3,
            "seriesMin": 256,
            "fit": True,
        },
        "instancetypes": [{"name": "x"}],
    }
    (pool,) = parse_config(config([raw])).nodepools
    assert (pool.headroom_memory, pool.headroom_series, pool.headroom_series_min, pool.headroom_fit) == (
        14_400.0,
        0.3,
        256,
        True,
    )
    (plain,) = parse_config(config([{"name": "p", "instancetypes": [{"name": "x"}]}])).nodepools
    assert (plain.headroom_memory, plain.headroom_series, plain.headroom_fit) == (0.0, 0.0, False)


@pytest.mark.parametrize(
    ("pools", "path", "text"),
    [
        (
            [{"name": "p", "min": 3, "max": 1, "instancetypes": [{"name": "x"}]}],
            "nodepools[0]",
            "min 3 is above max 1",
        ),
        ([{"name": "p", "instancetypes": []}], "nodepools[0]", "needs instancetypes"),
        ([{"name": "p", "instancetypes": [{"name": "x", "gpus": 4}]}], "instancetypes[0]", "no gputype"),
        ([{"name": "p", "instancetypes": [{"name": "x", "memory": "lots"}]}], "memory", "not a quantity"),
        (
            [{"name": "p", "idletimeout": "soon", "instancetypes": [{"name": "x"}]}],
            "idletimeout",
            "idletimeout",
        ),
        ([{"name": "p", "colour": "red", "instancetypes": [{"name": "x"}]}], "colour", "unknown"),
        (
            [{"name": "p", "transfercost": "cheap", "instancetypes": [{"name": "x"}]}],
            "transfercost",
            "number >= 0",
        ),
        ([{"name": "p", "instancetypes": [{"name": "x", "hourlycost": -1}]}], "hourlycost", "number >= 0"),
        (
            [{"name": "p", "headroom": {"window": "15m"}, "instancetypes": [{"name": "x"}]}],
            "headroom.window",
            "needs headroom.maxNodes",
        ),
        (
            [{"name": "p", "headroom": {"maxNodes": 4}, "instancetypes": [{"name": "x"}]}],
            "headroom.maxnodes",
            "needs headroom.window",
        ),
        (
            [
                {
                    "name": "p",
                    "headroom": {"nodes": 3, "window": 60, "maxNodes": 2},
                    "instancetypes": [{"name": "x"}],
                }
            ],
            "headroom.maxnodes",
            "below headroom.nodes 3",
        ),
        (
            [{"name": "p", "headroom": {"window": "often", "maxNodes": 2}, "instancetypes": [{"name": "x"}]}],
            "headroom.window",
            "headroom.window",
        ),
        (
            [{"name": "p", "headroom": {"memory": "4h", "series": 0.3}, "instancetypes": [{"name": "x"}]}],
            "headroom.memory",
            "needs headroom.window",
        ),
        (
            [{"name": "p", "headroom": {"seriesWindow": "4m"}, "instancetypes": [{"name": "x"}]}],
            "headroom.seriesWindow",
            "needs headroom.window",
        ),
        (
            [
                {
                    "name": "p",
                    "headroom": {"window": "15m", "maxNodes": 4, "memory": "4h", "series": 2},
                    "instancetypes": [{"name": "x"}],
                }
            ],
            "headroom.series",
            "share between 0 and 1",
        ),
        ("p", "nodepools", "must be a list"),
    ],
)
def test_bad_pools_name_the_place(pools, path, text):
    with pytest.raises(ConfigError) as err:
        parse_config(config(pools))
    rendered = err.value.render()
    assert path in rendered and text.lower() in rendered.lower(), rendered


def test_compaction_settings_parse_and_are_checked():
    cfg = parse_config({**BASE, "compaction": {"budget": 3, "interval": "2m"}})
    assert (cfg.compaction_budget, cfg.compaction_interval) == (3, 120.0)
    assert parse_config(BASE).compaction_budget == 0  # off unless configured
    for bad, path, text in (
        ({"budget": -1}, "compaction.budget", "whole number"),
        ({"budget": 2, "interval": 0}, "compaction.interval", "above 0"),
        ({"moves": 2}, "compaction.moves", "unknown"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config({**BASE, "compaction": bad})
        rendered = err.value.render()
        assert path in rendered and text in rendered, rendered
