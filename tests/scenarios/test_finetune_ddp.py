"""The fine-tune across processes (DDP, gloo on the CPU): two processes with the same global
batch and seed train what one process trains, a rank that fails ends the job with no report,
and a run checkpointed by one process resumes on two.

The processes are forked (milliseconds; spawning two fresh interpreters costs ~10 s here), each
joining a gloo group on a free local port. Equality is within float tolerance, not exact: each
process averages its half-batch's gradients and the all-reduce then sums the two halves, a
different summation order from one process's mean over the whole batch."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from emobench.data.labeled import load_labeled
from emobench.errors import UsageError
from emobench.models import EmotionNet
from emobench.results import load, save
from emobench.scenarios.finetune import FinetuneConfig, run_finetune
from emobench.scenarios.finetune.distributed import (
    World,
    per_process_batch,
    process_group,
    world_from_env,
)
from emobench.scenarios.finetune.run import run_finetune_distributed
from tests.conftest import small_cnn

CPU = torch.device("cpu")
WEIGHT_ATOL = 1e-5  # float32 weights after two epochs of SGD: the differences seen are ~1e-7
LOSS_RTOL = 1e-5
JOIN_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not torch.distributed.is_available(),
    reason="forks gloo processes (Linux)",
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(folder: Path, **kw: Any) -> FinetuneConfig:
    base: dict[str, Any] = dict(
        data="synthetic",
        device="cpu",
        pipelines=("direct48",),
        epochs=2,
        batch_size=16,
        workers=0,
        optimizer="sgd",
        lr=0.05,
        pretrained=False,
        checkpoint_dir=str(folder / "ck"),
        measure_memory=False,
    )
    return FinetuneConfig(**(base | kw))


class _Fails:
    """small_cnn whose forward raises at training step `at` (rank 1 only)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, *args: Any, **kwargs: Any) -> EmotionNet:
        model = small_cnn(*args, **kwargs)
        forward = model.forward

        def failing(x: torch.Tensor) -> torch.Tensor:
            if model.training:
                self.calls += 1
                if self.calls == self.at:
                    raise RuntimeError(f"injected failure at step {self.at}")
            return forward(x)

        model.forward = failing  # type: ignore[method-assign]
        return model


def _rank(
    rank: int, port: int, csv: str, config: FinetuneConfig, out: str, fail_at: int | None
) -> None:
    """One process of the world: train, rank 0 writes the report; the outcome to out."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = World(size=2, rank=rank, local_rank=rank, backend="gloo")
    build = _Fails(fail_at) if fail_at is not None and rank == 1 else small_cnn
    outcome: dict[str, Any] = {"rank": rank}
    try:
        with process_group(world):
            report = run_finetune_distributed(
                config, load_labeled(Path(csv)), CPU, world, build=build
            )
        if report is not None:
            save(report, Path(out, "report.json"))
        outcome["ok"] = True
    except BaseException as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
        Path(out, f"rank{rank}.json").write_text(json.dumps(outcome))
        os._exit(1)
    Path(out, f"rank{rank}.json").write_text(json.dumps(outcome))
    os._exit(0)


def _two_processes(
    csv: Path, config: FinetuneConfig, out: Path, fail_at: int | None = None
) -> list[dict[str, Any]]:
    """Both ranks run to their end (or are killed at the timeout): their outcomes."""
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_rank, args=(r, port, str(csv), config, str(out), fail_at))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_TIMEOUT_S)
        if p.exitcode is None:
            p.kill()
            p.join()
    return [
        json.loads((out / f"rank{r}.json").read_text())
        if (out / f"rank{r}.json").exists()
        else {"rank": r, "error": "no outcome (killed at the timeout)"}
        for r in range(2)
    ]


def _last_weights(config: FinetuneConfig) -> dict[str, torch.Tensor]:
    path = Path(config.checkpoint_dir) / "direct48-seed0-last.pt"
    return torch.load(path, weights_only=True)["weights"]


def test_two_processes_train_what_one_trains(tmp_path: Path, fer_csv: Path) -> None:
    one_cfg = _config(tmp_path / "one")
    one = run_finetune(one_cfg, load_labeled(fer_csv), CPU, build=small_cnn)
    two_cfg = _config(tmp_path / "two")
    outcomes = _two_processes(fer_csv, two_cfg, tmp_path / "two")
    assert all(o.get("ok") for o in outcomes), outcomes
    two = load(tmp_path / "two" / "report.json")
    assert one.finetune is not None and two.finetune is not None
    one_losses = [e.train_loss for e in one.finetune.runs[0].epochs]
    two_losses = [e.train_loss for e in two.finetune.runs[0].epochs]
    assert two_losses == pytest.approx(one_losses, rel=LOSS_RTOL)
    wa, wb = _last_weights(one_cfg), _last_weights(two_cfg)
    assert wa.keys() == wb.keys()
    biggest = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert biggest <= WEIGHT_ATOL, biggest
    # the same weights score the same images alike
    assert two.finetune.runs[0].test.predictions == one.finetune.runs[0].test.predictions
    dist = two.config["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    assert dist["batch_per_process"] == 8 and dist["evaluated_on"] == "rank 0"
    rates = dist["per_rank_images_per_s"]["direct48 seed 0"]
    assert len(rates) == 2 and all(len(r) == 2 and min(r) > 0 for r in rates)
    assert one.config["distributed"]["world_size"] == 1
    assert any("data-parallel over 2 processes (gloo)" in n for n in two.notes)
    print(
        f"\nequivalence: max |weight difference| {biggest:.3g}; train losses 1 process "
        f"{one_losses}, 2 processes {two_losses}"
    )


def test_a_rank_that_fails_ends_the_job_and_no_report_is_written(
    tmp_path: Path, fer_csv: Path
) -> None:
    outcomes = _two_processes(fer_csv, _config(tmp_path), tmp_path / "out", fail_at=3)
    assert "injected failure at step 3" in outcomes[1]["error"]
    zero = outcomes[0]["error"]
    assert zero.startswith("MeasurementError: rank 0 of 2: another process of the fine-tune")
    assert "no report was written" in zero
    assert not (tmp_path / "out" / "report.json").exists()


class _StopAt:
    """A progress callback that interrupts when `epoch` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, pipeline: str, seed: int, epoch: int, *_: Any) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_run_checkpointed_by_one_process_resumes_on_two(tmp_path: Path, fer_csv: Path) -> None:
    data = load_labeled(fer_csv)
    config = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config, data, CPU, build=small_cnn, progress=_StopAt(2))
    resumed = dataclasses.replace(config, resume=True)
    outcomes = _two_processes(fer_csv, resumed, tmp_path / "out")
    assert all(o.get("ok") for o in outcomes), outcomes
    straight_cfg = _config(tmp_path / "straight")
    run_finetune(straight_cfg, data, CPU, build=small_cnn)
    wa, wb = _last_weights(straight_cfg), _last_weights(resumed)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= WEIGHT_ATOL


def test_the_world_comes_from_torchruns_environment() -> None:
    assert world_from_env({}).size == 1
    assert world_from_env({"WORLD_SIZE": "1", "RANK": "0"}).distributed is False
    w = world_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (w.size, w.rank, w.local_rank, w.main) == (4, 2, 0, False)
    with pytest.raises(UsageError, match="do not fit WORLD_SIZE 2"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert per_process_batch(16, w) == 4
    with pytest.raises(UsageError, match="the global batch 18 does not divide across 4"):
        per_process_batch(18, w)


def test_the_process_group_waits_longer_than_the_default_for_rank_0s_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 0 alone validates and scores while the others wait at a barrier: the collective
    timeout must outlast torch's default 10 minutes."""
    import datetime

    import torch.distributed as dist

    from emobench.scenarios.finetune import distributed as D
    from emobench.scenarios.finetune.settings import World

    seen: dict[str, object] = {}
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)
    world = World(rank=0, size=2, local_rank=0, backend="gloo")
    with D.process_group(world):
        pass
    assert seen["timeout"] == datetime.timedelta(seconds=D.COLLECTIVE_TIMEOUT_S)
    assert D.COLLECTIVE_TIMEOUT_S > 600
