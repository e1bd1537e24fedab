"""Reports written before the house moved (schema v1, recorded by emobench at 2516da7 and kept
under tests/data/reports/) still load, render, check and gate, and reading them imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.gate.store import machine_class, resolve_baseline
from emobench.gate.verdicts import NOISY, PASS, check
from tests.paths import REPORTS, ROOT

COMPARE = REPORTS / "compare-v1.json"
FINETUNE = REPORTS / "finetune-v1.json"
BASELINE = REPORTS / "baseline-ci-v1.json"
runner = CliRunner()


@pytest.mark.parametrize("path", [COMPARE, FINETUNE, BASELINE], ids=lambda p: p.name)
def test_old_reports_load_and_round_trip(path: Path) -> None:
    report = R.load(path)
    assert report.kind == json.loads(path.read_text())["kind"]
    assert R.from_dict(json.loads(R.to_json(report))) == report


def test_old_compare_report_keeps_its_figures() -> None:
    report = R.load(COMPARE)
    assert report.backbones == ["resnet18"]
    up, dn = report.result("resnet18", R.UPSCALE), report.result("resnet18", R.DIRECT)
    assert up is not None and dn is not None
    assert up.params.total == 11_180_103 and up.input_size == 224 and dn.input_size == 48
    rows = {row.key: row for row in R.metric_rows(report)}
    assert rows["flops_per_image"].ratio == pytest.approx(up.flops_per_image / dn.flops_per_image)


def test_old_compare_report_checks_against_itself() -> None:
    report = R.load(COMPARE)
    verdicts = check(report, report, {})
    assert verdicts and not [v for v in verdicts if v.failed]
    assert {v.verdict for v in verdicts} <= {PASS, NOISY}


def test_the_stored_ci_baseline_still_gates() -> None:
    source = resolve_baseline(str(BASELINE))
    (stored,) = source.stored
    assert stored.machine_class == machine_class(stored.report)
    assert stored.report.thresholds and stored.report.run_ratios  # calibrated: carries both
    assert source.metric_keys >= {"flops_per_image", "params_total"}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["report", str(COMPARE)], 0),
        (["report", str(FINETUNE)], 0),
        (["report", str(BASELINE)], 0),
        (["claims", str(COMPARE)], 0),
        (["claims", str(FINETUNE)], 0),
        (["check", str(COMPARE), "--baseline", str(COMPARE)], 0),
        (["check", str(FINETUNE), "--baseline", str(COMPARE)], 2),
    ],
    ids=lambda v: " ".join(Path(a).name for a in v) if isinstance(v, list) else str(v),
)
def test_old_reports_through_the_commands(args: list[str], code: int, tmp_path: Path) -> None:
    result = runner.invoke(
        app, [*args, *(["--candidate-out", str(tmp_path / "c.json")] if args[0] == "check" else [])]
    )
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_reading_reports_imports_no_torch(tmp_path: Path) -> None:
    """--help, report, claims and check on existing reports need no torch (~4 s, ~800 MB to
    import): asserted on the modules loaded, in a fresh interpreter."""
    commands = [
        ["--help"],
        ["compare", "--help"],
        ["report", str(COMPARE)],
        ["report", str(FINETUNE), str(COMPARE)],
        ["claims", str(COMPARE)],
        [
            "check",
            str(COMPARE),
            "--baseline",
            str(COMPARE),
            "--candidate-out",
            str(tmp_path / "c.json"),
        ],
    ]
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    out.append([args[0], r.exit_code, 'torch' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [[c[0], 0, False] for c in commands]
