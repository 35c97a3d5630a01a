"""Run one control plane with the test ProcessExecutor in its own process (for the kill -9 test).

python serve.py DATA_DIR PORT CONFIG [DATABASE_URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from executors import ProcessExecutor

from gpupool.service.runner import serve
from gpupool.service.settings import ServiceSettings


def main() -> None:
    data_dir, port, config = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    database = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
    settings = ServiceSettings(
        data_dir=data_dir, database_url=database, config_path=config, port=port, tick_interval=0.1
    )
    serve(settings, ProcessExecutor(data_dir / "jobs"))


if __name__ == "__main__":
    main()
