"""`python -m emobench.results`: print the metric table of docs/metrics.md; with a file path,
replace the table between its markers in that file instead (`make docs`)."""

import sys
from pathlib import Path

from emobench.results.metrics import TABLE_BEGIN, TABLE_END, markdown_table

if len(sys.argv) > 1:
    page = Path(sys.argv[1])
    text = page.read_text(encoding="utf-8")
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END) + len(TABLE_END) + 1
    page.write_text(text[:start] + markdown_table() + text[end:], encoding="utf-8")
else:
    print(markdown_table(), end="")
