"""The performer's control panel: a Qt window over an engine host, with presets, MIDI learn and OSC.

Qt-free logic lives in :mod:`controls` (knob keys, tapers, formatting), :mod:`presets`, :mod:`midi` and
:mod:`osc`, so the CLI and tests use it without a display. The Qt side is :mod:`window` (the panel),
:mod:`knob`, :mod:`meters`, :mod:`spectrogram`, :mod:`theme`, and :mod:`app` (``audio-diffusion gui``).
"""
