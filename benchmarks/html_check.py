"""`report --html` in a real browser (issue #22): the page renders in headless Chromium, offline.

Run by hand (not a test, not a timing benchmark):

    .venv/bin/python benchmarks/html_check.py [REPORT ...] [--out docs/images/report-html.png]

With no reports it reads every report under results/ (results/*.json and the baselines in
results/baselines/*/*.json) and, for a second machine class, the compare report an earlier
emobench recorded in tests/data/reports/compare-v1.json. It then

1. writes the page with `emobench report REPORTS --html PAGE` (a fresh process);
2. loads it in Debian's `chromium --headless` with every host name unresolvable (so a page that
   fetched anything would show it missing) and checks the DOM Chromium built (`--dump-dom`):
   the marker, every section's heading, the comparison table, the claims with a verdict and
   a 95% interval, inline PNG plots only, each decoding as a PNG, and no http(s) reference
   anywhere;
3. screenshots it (`--screenshot`) to --out, and checks the screenshot is a PNG of the window's
   size that is not blank.

Needs `chromium` (apt-get install chromium) or --chromium PATH. Exit 0 when every check
passes, 1 with the failed checks listed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "report-html.png"
OTHER_CLASS = ROOT / "tests" / "data" / "reports" / "compare-v1.json"
WINDOW = (1280, 1600)  # the screenshot: the page's top (reports read, the claims)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
HEADINGS = (
    "emobench report",
    "Reports read",
    "Settings and device limits",
    "Comparison",
    "The write-up's claims",
    "Plots",
)
OFFLINE = [
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: the page must need nothing
]


def default_reports() -> list[Path]:
    found = sorted((ROOT / "results").glob("*.json"))
    found += sorted((ROOT / "results" / "baselines").glob("*/*.json"))
    if OTHER_CLASS.exists():
        found.append(OTHER_CLASS)
    return found


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.generator: str | None = None
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "meta" and a.get("name") == "generator":
            self.generator = a.get("content")
        if tag == "section" and a.get("id"):
            self.sections.append(str(a["id"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_dom(dom: str) -> list[str]:
    """The failed checks of the DOM Chromium built from the page (empty: all passed)."""
    parsed = _Dom()
    parsed.feed(dom)
    text = " ".join(" ".join(parsed.text).split())
    failed = []
    if not (parsed.generator or "").startswith("emobench"):
        failed.append(f"generator meta tag: {parsed.generator!r}")
    failed += [f"heading missing: {h!r}" for h in HEADINGS if h not in text]
    if "ratio [95% CI]" not in text or "latency b1, median" not in text:
        failed.append("the comparison table (ratio [95% CI], latency b1, median) is missing")
    if not re.search(r"\b(holds|does not hold|inconclusive)\b", text):
        failed.append("no claim verdict (holds / does not hold / inconclusive)")
    if not re.search(r"\d+\.\d\dx \[\d+\.\d\d, \d+\.\d\d\]", text):
        failed.append("no measured ratio with its 95% interval, e.g. 14.72x [14.26, 15.23]")
    pngs = [i for i in parsed.imgs if str(i.get("src", "")).startswith("data:image/png;base64,")]
    if not pngs or len(pngs) != len(parsed.imgs):
        failed.append(f"images: {len(pngs)} inline PNG of {len(parsed.imgs)}")
    failed += [f"image {i}: {why}" for i, img in enumerate(pngs) if (why := _bad_png(img))]
    if re.search(r"https?://", dom):
        failed.append("an http(s):// reference in the page")
    return failed


def _bad_png(img: dict[str, str | None]) -> str:
    """Why an inline image would not show ('' when it decodes as a PNG of some size)."""
    import base64
    import io

    from PIL import Image, UnidentifiedImageError

    data = str(img.get("src", "")).split(",", 1)[-1]
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as png:
            png.verify()
            width, height = png.size
    except (ValueError, OSError, UnidentifiedImageError) as e:
        return f"does not decode ({e})"
    return "" if width > 100 and height > 100 else f"{width}x{height} px"


def check_screenshot(path: Path, size: tuple[int, int]) -> list[str]:
    if not path.exists():
        return [f"no screenshot at {path}"]
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return [f"{path} is not a PNG"]
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    failed = [] if (width, height) == size else [f"screenshot {width}x{height}, not {size}"]
    from PIL import Image  # Pillow comes with torchvision

    with Image.open(path) as img:
        lo, hi = img.convert("L").getextrema()
    if hi - lo < 100:
        failed.append(f"the screenshot is blank (grey levels {lo}..{hi})")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path, help="reports (default: results/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the screenshot (PNG)")
    parser.add_argument("--page", type=Path, help="keep the page here (default: a temp file)")
    parser.add_argument("--chromium", help="the browser (default: chromium on PATH)")
    args = parser.parse_args()
    browser = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        print("no chromium on PATH: apt-get install chromium, or pass --chromium PATH")
        return 1
    reports = args.reports or default_reports()
    if not reports:
        print("no reports: give some, or record one under results/")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        page = args.page or Path(tmp) / "report.html"
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "emobench", "report", *map(str, reports)]
        made = subprocess.run(
            [*cmd, "--html", str(page), "--force"], env=env, capture_output=True, text=True
        )
        if made.returncode != 0:
            print(f"emobench report failed ({made.returncode}):\n{made.stderr}")
            return 1
        url = page.resolve().as_uri()
        profile = ["--user-data-dir=" + str(Path(tmp) / "profile")]
        dom = subprocess.run(
            [browser, *OFFLINE, *profile, "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=180,
        )
        failed = check_dom(dom.stdout) if dom.returncode == 0 else [f"--dump-dom: {dom.stderr}"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
        shot = subprocess.run(
            [browser, *OFFLINE, *profile, size, f"--screenshot={args.out}", url],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if shot.returncode != 0:
            failed.append(f"--screenshot: {shot.stderr.strip().splitlines()[-1:]}")
        failed += check_screenshot(args.out, WINDOW)
        version = subprocess.run([browser, "--version"], capture_output=True, text=True)
        print(f"browser: {version.stdout.strip() or browser}")
        print(f"reports: {', '.join(str(p.relative_to(ROOT)) for p in map(Path.resolve, reports))}")
        print(f"page: {page} ({page.stat().st_size:,} bytes), screenshot: {args.out}")
    for line in failed:
        print(f"FAILED: {line}")
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
