"""Shared fixtures: a real JACK dummy server, real exported models, Qt offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from realtime.tools.jackserver import JackServer  # noqa: E402


@pytest.fixture(scope="session")
def jack(tmp_path_factory):
    """One JACK dummy server (48 kHz, period 128) for the whole session."""
    server = JackServer(f"adh-test-{os.getpid()}", log_dir=tmp_path_factory.mktemp("jack")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tp_model(tmp_path_factory):
    """A real contract-v1 ONNX model built without torch (export/thirdparty_example.py)."""
    from export.thirdparty_example import build_thirdparty_model

    return build_thirdparty_model(tmp_path_factory.mktemp("models") / "thirdparty.onnx")
