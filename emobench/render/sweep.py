"""A sweep's summary: what was requested (exclusivity included) and every job that left no
report, with its log's last lines. Plain lines, so they read the same in a log file."""

from __future__ import annotations

from typing import Any


def sweep_lines(gathered: Any) -> list[str]:
    """Lines for a launchers.sweep.Gathered: the request, then the jobs without a report."""
    sweep = gathered.sweep
    lines: list[str] = []
    if sweep is None:
        lines.append(f"{gathered.folder}: no sweep manifest; merging the reports found there")
    else:
        done = len(sweep.jobs) - len(gathered.missing)
        if sweep.exclusive_requested:
            exclusive = "exclusive nodes requested (--exclusive)"
        else:
            parallel = sweep.parameters.get("array_parallelism", 1)
            exclusive = (
                "no exclusive allocation (local executor); jobs ran one at a time"
                if parallel == 1
                else f"no exclusive allocation (local executor); {parallel} jobs at a time "
                "shared this machine"
            )
        lines.append(
            f"sweep in {sweep.folder}: {sweep.executor} executor, {exclusive}; "
            f"{done} of {len(sweep.jobs)} jobs wrote a report"
        )
    for job in gathered.missing:
        jid = f"job {job.job_id}" if job.job_id else "not submitted"
        lines.append(f"{job.name} ({job.target}, {jid}): {job.state}; last log lines:")
        lines.extend(f"    {line}" for line in job.log_tail)
    return lines
