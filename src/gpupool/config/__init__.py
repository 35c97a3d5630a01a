"""The queue configuration at the edge: Apache YuniKorn's ``queues.yaml`` plus gpupool's additions.

``parse_config(raw)`` builds the frozen dataclasses of ``gpupool.core.config`` from the plain
mapping ``yaml.safe_load`` returns, and raises one ``ConfigError`` listing every issue found
(``gpupool.configfile`` reads the file and adds line numbers). The layers:

* ``schema``: the structure of the file as pydantic models (the keys of each object);
* ``reader``: generic readers of values (strings, counts, resources, durations);
* ``queues``: partitions, the queue tree, properties, ACLs, limits, placement rules;
* ``pools``: node pools, instance types and sizes (``DEFAULT_SIZES``);
* ``parse``: the top level.

YuniKorn's cross-checks live in the core (``gpupool.core.configcheck``), and so does what the
core acts on (``gpupool.core.config``). This package may import the core; the core never imports it.
"""

from __future__ import annotations

from gpupool.config.parse import parse_config
from gpupool.config.pools import DEFAULT_SIZES
from gpupool.config.queues import MINIMAL_CONFIG
from gpupool.core.configerror import ConfigError, ConfigIssue, DurationError, parse_duration

__all__ = [
    "DEFAULT_SIZES",
    "MINIMAL_CONFIG",
    "ConfigError",
    "ConfigIssue",
    "DurationError",
    "parse_config",
    "parse_duration",
]
