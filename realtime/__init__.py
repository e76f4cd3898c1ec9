"""Audio Diffusion Host: a real-time neural audio effect (engine, audio I/O, panel, CLI).

The public API is three names, imported lazily so that ``import realtime`` (and the CLI's start-up) stays
light::

    from realtime import Effect, Chain, live
    fx = Effect("default", amount=0.4, seed=1)
    y = fx(x, sample_rate)                      # x: (samples,) or (channels, samples)

This package never imports torch; ``models`` and ``export`` import from here, never the reverse.
"""

__version__ = "0.1.0"
__all__ = ["Effect", "Chain", "live", "__version__"]


def __getattr__(name: str):
    if name in ("Effect", "Chain", "live", "LiveHandle"):
        from realtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
