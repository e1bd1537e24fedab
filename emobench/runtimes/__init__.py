"""Runtimes: how a built pipeline is executed. torch.py runs it in PyTorch, eager or compiled
(preprocessing, forward, a training step); a deployment runtime (ONNX Runtime, ...) goes beside it
and is measured by the same scenarios."""
