"""`python -m emobench.results`: print the metric table of docs/metrics.md; with a file path,
replace the table between its markers in that file instead (`make docs`)."""

import sys
from pathlib import Path

from emobench import files
from emobench.errors import EXIT_USAGE, UsageError
from emobench.results.metrics import TABLE_BEGIN, TABLE_END, markdown_table

MAX_PAGE_BYTES = 2**20


def splice(page: Path) -> None:
    """Replace the metric table between the markers of `page`, atomically."""
    text = files.read_text(page, UsageError, "docs page", MAX_PAGE_BYTES)
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise UsageError(f"{page}: no metric table markers ({TABLE_BEGIN!r} ... {TABLE_END!r})")
    end += len(TABLE_END) + 1
    files.write_atomic(page, text[:start] + markdown_table() + text[end:])


if len(sys.argv) > 1:
    try:
        splice(Path(sys.argv[1]))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
else:
    print(markdown_table(), end="")
