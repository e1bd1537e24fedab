"""Every statistic emobench computes, and the only place scipy is imported: sample summaries and
their intervals (summary), gate thresholds and two-sample tests (gate), classification scores and
paired tests (classification)."""
