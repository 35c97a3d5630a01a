"""Where the traces and configurations gpupool ships live: the repository's ``data/`` folder.

``data/`` holds plain copies of public cluster traces (Alibaba's GPU trace, Microsoft's Philly,
SenseTime's Helios) and Apache YuniKorn's sample configurations, each with its provenance and
terms (``data/README.md``). ``$GPUPOOL_TRACE_DIR`` points elsewhere (a folder with the same
layout). Not ``$GPUPOOL_DATA_DIR``: that one is the control plane's state (``~/.gpupool``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_TRACE_DIR = "GPUPOOL_TRACE_DIR"
REPO_DATA = Path(__file__).resolve().parents[2] / "data"

PHILLY_JOBS = "philly/philly.csv"
PHILLY_VCS = "helios/philly_vc.csv"
ALIBABA_NODES = "alibaba-gpu-v2023/openb_node_list_gpu_node.csv"
ALIBABA_PODS = "alibaba-gpu-v2023/openb_pod_list_default.csv"


def trace_dir() -> Path:
    """``$GPUPOOL_TRACE_DIR``, else the ``data/`` folder of the repository gpupool runs from."""
    env = os.environ.get(ENV_TRACE_DIR)
    return Path(env) if env else REPO_DATA


def trace_file(relative: str) -> Path:
    """A shipped file by its path under ``data/`` (e.g. ``PHILLY_JOBS``)."""
    return trace_dir() / relative


WHERE = f"the repository's data/ folder, or ${ENV_TRACE_DIR}"
