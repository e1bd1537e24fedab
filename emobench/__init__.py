"""emobench: benchmark direct-48x48 vs upscale-to-224 emotion-recognition CNNs."""

__version__ = "0.1.0"
