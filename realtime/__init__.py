"""Audio Diffusion Host: the real-time side (engine, audio I/O, GUI, CLI, benchmarks).

This package never imports torch; ``models`` and ``export`` import from here, never the reverse.
"""

__version__ = "0.1.0"
