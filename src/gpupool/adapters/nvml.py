"""GPU utilisation read through NVML (``nvidia-ml-py``, imported as ``pynvml``).

``gpu_utilisation(indices)`` is the highest utilisation (percent of the last sample period in
which a kernel ran on the GPU, as ``nvidia-smi`` shows it) of the given GPUs, or None when it
cannot be read: no NVML library or driver (a machine without NVIDIA GPUs, the local cluster's
logical GPUs), an index that does not exist, or no index at all. Idle detection then goes on
without the GPU condition instead of failing.

It must run on the node that holds the GPUs (inside the session's process on Ray). Indices are
NVML's (``nvidia-smi``'s, PCI bus order); CUDA numbers devices the same way only under
``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pynvml

__all__ = ["gpu_utilisation"]


def gpu_utilisation(indices: Sequence[int]) -> float | None:
    """The highest utilisation (percent) of the GPUs at ``indices``, None when NVML cannot read them all."""
    if not indices:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        rates = [pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()
    return float(max(rate.gpu for rate in rates))
