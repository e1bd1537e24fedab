"""Launchers: where a measurement runs. The scenarios run in this process; child.py runs one
function in a fresh, isolated interpreter (the CPU max-batch confirmation, whose peak RSS must
be a new process's). Multi-process and cluster launchers go beside it."""
