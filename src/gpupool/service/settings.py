"""Settings of one control-plane process, built once and passed down explicitly; its queue config."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.config.queues import DEFAULT_PARTITION
from gpupool.configfile import load_config
from gpupool.core.config import Config

DEFAULT_PORT = 8080
SESSION_CHECK_INTERVAL = 15.0  # seconds between two idle checks of every running notebook session
ENV_DATA_DIR = "GPUPOOL_DATA_DIR"
DEFAULT_CONFIG = Path(__file__).parent / "default_queues.yaml"


def load_queue_config(path: Path | None) -> Config:
    """The configuration file, or the packaged default. Raises ConfigError."""
    return load_config(path or DEFAULT_CONFIG)


def default_data_dir() -> Path:
    """``$GPUPOOL_DATA_DIR``, else ``~/.gpupool``."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env).expanduser() if env else Path.home() / ".gpupool"


@dataclass(slots=True)
class ServiceSettings:
    """How one control-plane process runs: data dir, database, config file, address, tick interval, stop."""

    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite in the data dir
    config_path: Path | None = None  # None: the packaged default_queues.yaml
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tick_interval: float = 0.5  # seconds between driver ticks (submissions wake it early)
    # Seconds between two rounds of the notebook sessions' idle checks (service/notebook_reaper).
    session_check_interval: float = SESSION_CHECK_INTERVAL
    partition: str = DEFAULT_PARTITION
    # Seconds a graceful stop waits for running work to checkpoint and stop (None: it is left
    # running, for a cluster that outlives the control plane). ``gpupool up`` sets it when it
    # runs its own local cluster.
    checkpoint_on_stop: float | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gpupool.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def server_file(self) -> Path:
        """Where a running server writes its URL, for the CLI to find."""
        return self.data_dir / "server.json"

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
