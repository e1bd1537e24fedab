"""NVML through a fake module: memory and energy read, absent without the library."""

from __future__ import annotations

import sys
import types

import pytest

from emobench.measure import nvml


class FakeNVML(types.ModuleType):
    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init = fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByUUID(self, uuid: str):
        if uuid != "GPU-1234":
            raise RuntimeError("not found")
        return "handle"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(total=80 * 2**30, used=3 * 2**30, free=77 * 2**30)

    def nvmlSystemGetDriverVersion(self):
        raise RuntimeError("refused")


def test_nvml_with_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())
    mod = nvml.load_nvml()
    assert mod is not None
    handle = nvml.handle_for_uuid(mod, "1234")
    assert handle == "handle"
    assert nvml.handle_for_uuid(mod, "GPU-9999") is None
    assert nvml.used_bytes(mod, handle) == 3 * 2**30
    info = nvml.device_info(mod, handle)
    assert info == {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_memory_total_bytes": 80 * 2**30,
        "driver": None,  # refused by NVML: absent, not invented
    }


def test_nvml_absent_when_library_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(fail_init=True))
    assert nvml.load_nvml() is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert nvml.load_nvml() is None
