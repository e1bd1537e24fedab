from __future__ import annotations

from emobench import machine
from tests.factories import make_report, other_class

CPU = make_report().environment


def test_class_id_is_readable_and_stable() -> None:
    cid = machine.class_id(CPU)
    assert cid.startswith("cpu-amd-epyc-avx512-2t-")
    assert len(cid.rsplit("-", 1)[1]) == machine.ID_HASH_CHARS
    # fields outside the class (the commit, the date) do not change it
    assert machine.class_id(CPU | {"git_commit": "abc", "python": "3.12"}) == cid


def test_every_class_field_changes_the_id() -> None:
    cid = machine.class_id(CPU)
    for key in machine.CPU_CLASS_KEYS:
        assert machine.class_id(CPU | {key: "changed"}) != cid, key


def test_differences_and_describe() -> None:
    avx2 = other_class(make_report()).environment
    assert machine.differences(CPU, avx2) == [
        "cpu_capability: AVX512 vs AVX2",
        "cpu_isa: avx512 vs avx2",
    ]
    assert machine.differences(CPU, CPU) == []
    assert machine.describe(avx2) == (
        "AMD EPYC, ISA avx2 (torch dispatches AVX2), 2 usable cores, 2 threads, torch 2.14.1"
    )


def test_cuda_class_uses_the_gpu_stack() -> None:
    gpu = CPU | {
        "device": "cuda:0",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_memory_total_bytes": 80 * 2**30,
        "driver": "550.54",
        "cuda_runtime": "12.4",
        "cudnn": 90100,
    }
    assert machine.class_id(gpu).startswith("cuda-nvidia-h100-80gb-hbm3-")
    # the host CPU does not split GPU classes
    assert machine.class_id(gpu | {"cpu_isa": "avx2"}) == machine.class_id(gpu)
    assert machine.describe(gpu).startswith("NVIDIA H100 80GB HBM3 (80 GiB), driver 550.54")
