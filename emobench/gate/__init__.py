"""The regression gate: baselines stored per machine class (store), thresholds from A/A runs
(calibrate), and one verdict per metric of a report checked against a baseline (verdicts)."""
