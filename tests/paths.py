"""Where tests find the project's own files, wherever the test module sits."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DOCS = ROOT / "docs"
REPORTS = ROOT / "tests" / "data" / "reports"  # reports recorded by an earlier emobench
