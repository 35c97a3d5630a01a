"""``parse_config``: a plain mapping (what ``yaml.safe_load`` returns) into a validated ``Config``.

The file is read in two layers. Its structure (which keys each object takes, case-insensitively,
unknown keys refused) is the pydantic models of ``gpupool.config.schema``, and its values are read
by ``QueueReader`` (partitions and queues) and ``PoolReader`` (node pools, sizes); YuniKorn's
cross-checks run in the core (``gpupool.core.configcheck``). Every issue found is collected into
one ``ConfigError``; the YAML edge (``gpupool.configfile``) adds the line of each.
"""

from __future__ import annotations

from gpupool.config.pools import DEFAULT_SIZES, PoolReader
from gpupool.config.queues import MINIMAL_CONFIG, QueueReader
from gpupool.config.schema import CompactionKeys, ConfigKeys
from gpupool.core.config import Config, NodePool, PartitionConfig
from gpupool.core.configerror import At, ConfigError

__all__ = ["parse_config"]

_DEFAULTS = Config(partitions=())  # what a key left out of the file means


def parse_config(raw: object, source: str = "<config>") -> Config:
    """Build and validate a Config from a plain mapping (what ``yaml.safe_load`` returns).

    Raises ConfigError listing every issue found.
    """
    parser = _Parser()
    config = parser.config(raw)
    if parser.issues or config is None:
        raise ConfigError(parser.issues, source)
    return config


class _Parser(QueueReader, PoolReader):
    def config(self, raw: object) -> Config | None:
        top = At("")
        if raw is None:
            self.error(top, "the configuration is empty", f"a minimal configuration: {MINIMAL_CONFIG}")
            return None
        fields = self.fields(raw, top, ConfigKeys, "the configuration")
        if fields is None:
            return None
        if "checksum" in fields and not isinstance(fields["checksum"].value, str | None):
            self.error(fields["checksum"].at, "checksum must be a string")
        partitions: list[PartitionConfig] = []
        if "partitions" not in fields:
            self.error(top, "`partitions` is missing", f"a minimal configuration: {MINIMAL_CONFIG}")
        else:
            partitions = self.partitions(fields["partitions"])
        sizes = dict(DEFAULT_SIZES)
        if "sizes" in fields:
            sizes = self.sizes(fields["sizes"])
        pools: list[NodePool] = []
        if "nodepools" in fields:
            pools = self.nodepools(fields["nodepools"])
        budget, interval = _DEFAULTS.compaction_budget, _DEFAULTS.compaction_interval
        if "compaction" in fields:
            cf = self.fields(
                fields["compaction"].value, fields["compaction"].at, CompactionKeys, "compaction"
            )
            if cf is not None:
                if "budget" in cf:
                    budget = self.amount(cf["budget"], "compaction.budget") or 0
                if "interval" in cf:
                    interval = self.seconds(cf["interval"], "compaction.interval") or 0.0
                    if interval <= 0 and "budget" in cf:
                        self.error(
                            cf["interval"].at, "compaction.interval must be above 0", "e.g. interval: 5m"
                        )
        return Config(
            partitions=tuple(partitions),
            sizes=sizes,
            nodepools=tuple(pools),
            compaction_budget=budget,
            compaction_interval=interval,
        )
