"""The environment fingerprint and the CPU's instruction-set tier."""

from __future__ import annotations

import pytest
import torch

from emobench.measure.env import cpu_isa, fingerprint, gpu_fingerprint


@pytest.mark.parametrize(
    ("flags", "tier"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "amx"),
        ({"avx2", "avx512f", "avx512_bf16"}, "avx512-bf16"),
        ({"avx2", "avx512f"}, "avx512"),
        ({"sse4_2", "avx2", "fma"}, "avx2"),
        ({"neon", "asimd"}, "other"),
        (set(), None),
    ],
)
def test_cpu_isa_tier_from_flags(flags: set[str], tier: str | None) -> None:
    assert cpu_isa(flags) == tier


def test_fingerprint_on_cpu() -> None:
    env = fingerprint(torch.device("cpu"))
    assert env["torch"] == torch.__version__
    assert env["num_threads"] == torch.get_num_threads()
    assert env["device"] == "cpu"
    assert env["cpu_model"]
    assert gpu_fingerprint(torch.device("cpu"))["gpu_name"] is None


def test_cpu_int8_names_the_int8_dot_product_instructions() -> None:
    from emobench.measure.env import cpu_int8

    assert cpu_int8({"avx2", "avx512f", "avx512_vnni"}) == ["avx512_vnni"]
    assert cpu_int8({"avx2", "avx_vnni", "amx_int8", "amx_tile"}) == ["avx_vnni", "amx_int8"]
    assert cpu_int8({"avx2", "fma"}) == []
    assert cpu_int8(set()) is None  # flags unknown: not "none"
