"""GPU utilisation through NVML: the real library on this machine, and the reading path with a stand-in
for the NVIDIA driver (which cannot exist on a machine without NVIDIA GPUs)."""

from __future__ import annotations

from dataclasses import dataclass

import pynvml
import pytest

from gpupool.adapters.nvml import gpu_utilisation


def nvml_works_here() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_the_real_nvml_gives_a_percentage_or_none_never_an_error() -> None:
    value = gpu_utilisation([0])
    if nvml_works_here():
        assert value is not None and 0.0 <= value <= 100.0
    else:  # this machine: no NVIDIA driver, so no NVML library
        assert value is None


def test_no_gpus_is_none() -> None:
    assert gpu_utilisation([]) is None


@dataclass
class Rates:
    gpu: int
    memory: int = 0


class FakeDriver:
    """What NVML answers on a node with three GPUs (utilisation per index); counts init/shutdown."""

    def __init__(self, busy: dict[int, int], init_fails: bool = False) -> None:
        self.busy = busy
        self.init_fails = init_fails
        self.open = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pynvml, "nvmlInit", self.init)
        monkeypatch.setattr(pynvml, "nvmlShutdown", self.shutdown)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", self.handle)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", lambda handle: Rates(self.busy[handle]))

    def init(self) -> None:
        if self.init_fails:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
        self.open += 1

    def shutdown(self) -> None:
        self.open -= 1

    def handle(self, index: int) -> int:
        if index not in self.busy:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index


def test_the_busiest_of_the_sessions_gpus_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver({0: 0, 1: 3, 2: 97})
    driver.install(monkeypatch)
    assert gpu_utilisation([0, 1]) == 3.0
    assert gpu_utilisation([1, 2]) == 97.0
    assert driver.open == 0  # every init was shut down


def test_a_gpu_nvml_cannot_read_makes_it_none_and_still_shuts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver({0: 50})
    driver.install(monkeypatch)
    assert gpu_utilisation([0, 7]) is None
    assert driver.open == 0


def test_a_driver_that_is_not_loaded_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDriver({0: 50}, init_fails=True).install(monkeypatch)
    assert gpu_utilisation([0]) is None
