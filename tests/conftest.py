"""Shared fixtures: a real JACK dummy server, real exported models, Qt offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from realtime.tools.jackserver import JackServer  # noqa: E402

#: Test modules that train or export with PyTorch (marked ``train``; ``make test-fast`` leaves them out).
TRAIN_MODULES = {"test_train", "test_export", "test_vae", "test_torchrun"}


def pytest_collection_modifyitems(config, items):
    """Mark every test by what it needs, from the fixtures it uses, so no marker can be forgotten:
    ``jack`` (the JACK dummy server), ``gui`` (a Qt window), ``train`` (PyTorch)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "jack" in names:
            item.add_marker(pytest.mark.jack)
        if names & {"qtbot", "qapp", "window"}:
            item.add_marker(pytest.mark.gui)
        if item.module.__name__.rsplit(".", 1)[-1] in TRAIN_MODULES:
            item.add_marker(pytest.mark.train)


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
