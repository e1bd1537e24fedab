"""`emobench stream`: both pipelines driven by MLPerf LoadGen as a deployment sees them: camera
streams at a frame rate, a deadline per frame, tail latency under load, the most streams a
device serves (settings: the torch-free options; harness: LoadGen and the systems under test;
search: the most streams; run: the scenario that builds the pipelines and writes the report)."""
