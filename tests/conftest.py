from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from emobench import results as R
from emobench.config import RunConfig
from emobench.data.labeled import (
    synthetic_labeled,
    write_fer_csv,
)
from emobench.models import PIPELINES, EmotionNet, TransferReport, get_backbone
from emobench.models.build import cached_weights_path
from emobench.scenarios.compare import run_benchmark
from tests.factories import TIGHT_UP, make_report, other_class, with_env

TINY = dict(
    warmup_iters=0,
    min_iters=2,
    min_time_s=0.0,
    max_time_s=0.001,
    limits_time_s=0.01,
    preprocess_images=4,
    batch_sizes=(2,),
)
# the same tiny settings as `compare` options
TINY_ARGS = [
    "--backbone",
    "resnet18",
    "--device",
    "cpu",
    "--batch-size",
    "2",
    "--warmup",
    "0",
    "--min-iters",
    "2",
    "--min-time",
    "0",
    "--preprocess-images",
    "4",
    "--max-time",
    "0.001",
    "--limits-time",
    "0.01",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def tiny_model(
    backbone: str,
    pipeline: str,
    num_classes: int = 7,
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> EmotionNet:
    """A five-op stand-in with the real input size: every runner code path, next to no compute,
    so no test's cost depends on the CPU (an emulated-bf16 CPU included)."""
    size = PIPELINES[pipeline]
    body = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=size // 12, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return as_emotion_net(body, nn.Linear(4, num_classes), backbone, pipeline)


def as_emotion_net(
    body: nn.Module, head: nn.Module, backbone: str, pipeline: str, freeze: bool = False
) -> EmotionNet:
    """A test model as the runner sees one: real input size, all tensors fresh."""
    net = EmotionNet(
        body,
        head,
        backbone_name=backbone,
        pipeline=pipeline,
        input_size=PIPELINES[pipeline],
        feature_map=(1, 1),
    )
    net.transfer = TransferReport("random", (), {}, tuple(net.state_dict()))
    if freeze:
        net.freeze_backbone()
    return net


@pytest.fixture(autouse=True)
def _tiny_models_in_runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmark runs in tests use tiny_model unless marked `real_models`."""
    if "real_models" in request.keywords:
        return
    import emobench.scenarios.compare as runner_mod

    monkeypatch.setattr(runner_mod, "build_model", tiny_model)


@pytest.fixture
def tiny_config() -> RunConfig:
    return RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]


def write_fake_checkpoint(
    torch_home: Path, backbone: str, seed: int = 1
) -> dict[str, torch.Tensor]:
    """A random state dict saved where torchvision's weights API looks for the real file."""
    spec = get_backbone(backbone)
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        path = cached_weights_path(spec)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    torch.manual_seed(seed)
    state = spec.torchvision_model(None).state_dict()
    for key, value in state.items():  # non-default BN statistics, so copying them is visible
        if key.endswith(("running_mean", "running_var")):
            value.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def trust_checkpoint(monkeypatch: pytest.MonkeyPatch, torch_home: Path, backbone: str) -> None:
    """Accept the fake checkpoint under `torch_home` as if its sha256 matched the prefix in the
    real file's name (a fake cannot: the check is what keeps planted files out)."""
    import hashlib

    from emobench.models import build

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    fake = cached_weights_path(get_backbone(backbone))
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    real = build.expected_sha256_prefix

    def expected(path: Path) -> str | None:
        return digest[:8] if path == fake else real(path)

    monkeypatch.setattr(build, "expected_sha256_prefix", expected)


@pytest.fixture(scope="session")
def resnet18_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    home = tmp_path_factory.mktemp("torch_home")
    return home, write_fake_checkpoint(home, "resnet18")


@pytest.fixture
def pretrained_resnet18(
    resnet18_home: tuple[Path, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, torch.Tensor]]:
    home, state = resnet18_home
    trust_checkpoint(monkeypatch, home, "resnet18")
    yield state


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """This CPU runs bf16 natively, whatever the real one does (tests stay CPU-independent)."""
    from emobench import device as device_mod

    monkeypatch.setattr(device_mod, "_cpu_bf16_native", lambda: True)


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """This CPU only emulates bf16 (an AVX2-only machine), whatever the real one does."""
    from emobench import device as device_mod

    monkeypatch.setattr(device_mod, "_cpu_bf16_native", lambda: False)


@pytest.fixture
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_labeled(280, seed=3)


@pytest.fixture(scope="module")
def fer_csv(
    tmp_path_factory: pytest.TempPathFactory, synthetic: tuple[np.ndarray, np.ndarray]
) -> Path:
    images, labels = synthetic
    path = tmp_path_factory.mktemp("fer") / "fer.csv"
    usage = ["Training"] * 196 + ["PublicTest"] * 42 + ["PrivateTest"] * 42
    write_fer_csv(path, images, labels, usage)
    return path


def small_cnn(
    backbone: str,
    pipeline: str,
    num_classes: int = 7,
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> EmotionNet:
    """A pooled-pixels MLP with the real input size: learns the synthetic classes in seconds."""
    size = PIPELINES[pipeline]
    body = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=size // 12, padding=1),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 32),
        nn.ReLU(),
    )
    return as_emotion_net(body, nn.Linear(32, num_classes), backbone, pipeline, freeze_backbone)


@pytest.fixture(scope="session")
def real_report() -> R.Report:
    """A real (tiny) run of both pipelines, shared by every test that reads one."""
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    return run_benchmark(config)


@pytest.fixture
def sigterm_guard() -> Iterator[None]:
    """A SIGTERM the code under test does not handle fails the test instead of killing pytest."""

    def unhandled(_signum, _frame):
        raise RuntimeError("SIGTERM was not handled")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def two_machines(tmp_path: Path) -> list[Path]:
    cpu = make_report(backbones=("vgg16", "resnet18"))
    gpu = with_env(make_report(up_latency=[5.0] * 5, dn_latency=[0.5] * 5), gpu_name="NVIDIA H100")
    paths = [tmp_path / "cpu.json", tmp_path / "gpu.json"]
    R.save(cpu, paths[0])
    R.save(gpu, paths[1])
    return paths


@pytest.fixture
def two_classes(tmp_path: Path) -> list[Path]:
    """An AVX-512 report (ratio 10x) and two AVX2-only ones (ratios 20x and 30x)."""
    paths = [tmp_path / n for n in ("avx512.json", "avx2-a.json", "avx2-b.json")]
    R.save(make_report(backbones=("vgg16", "resnet18")), paths[0])
    for path, factor in zip(paths[1:], (2, 3), strict=True):
        slow_up = [s * factor for s in TIGHT_UP]
        R.save(other_class(make_report(up_latency=slow_up, backbones=("vgg16",))), path)
    return paths
