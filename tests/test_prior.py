"""The learned latent prior: training on a tiny corpus, the exported contract-2 sampler graph in the real engine
(amount 0 == reconstruction, determinism per seed, offline == streamed), and the direction controls through
the engine, the CLI, presets, OSC and the panel (offscreen)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from realtime.engine import params as P  # noqa: E402
from realtime.engine.engine import Engine  # noqa: E402
from realtime.engine.model import EffectModel  # noqa: E402

SR = 48000


@pytest.fixture(scope="module")
def prior_model(tmp_path_factory) -> Path:
    """A prior model trained for a few seconds on a tiny built-in corpus and exported (K = 2 sampler steps)."""
    from export.prior_pipeline import export_trained
    from models import train_prior

    out = tmp_path_factory.mktemp("prior") / "tiny.onnx"
    rc = train_prior.main(["--minutes", "0.25", "--vae-steps", "60", "--prior-steps", "40", "--batch", "256",
                           "--seq-batch", "16", "--latent", "8", "--hidden", "64,32", "--gru", "32",
                           "--sampler-steps", "2", "--out", str(out), "--no-progress"], exporter=export_trained)
    assert rc == 0 and out.exists()
    return out


def music(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2
    x = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((196.0, 392.0, 588.0, 1176.0)))
    return (0.2 * env * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def engine(model, block: int = 128, seed: int = 1, **knobs) -> Engine:
    p = P.Params()
    for k, v in knobs.items():
        p.set(k, v)
    return Engine([model], block_size=block, seed=seed, params=p, deadline_share=math.inf)


def run(e: Engine, x: np.ndarray, block: int | None = None) -> np.ndarray:
    block = block or e.block_size
    y = np.zeros_like(x)
    for i in range(0, len(x) - block + 1, block):
        e.process_block(x[i:i + block], y[i:i + block])
    return y


@pytest.mark.train
def test_tiny_training_exports_a_contract_v2_model_with_state_and_controls(prior_model):
    m = EffectModel(prior_model)
    assert m.info.contract_version == 2 and m.stateful and m.has_z
    assert set(m.state_shapes) == {"gru0", "gru1"} and all(s == (1, 1, 32) for s in m.state_shapes.values())
    assert set(m.optional_inputs) == {"latent_offset", "latent_scale", "target", "toward", "latent_mode", "freeze"}
    metrics = m.info.metrics
    # The prior learned something in 40 steps: its v-loss is below the 1.0 of predicting zeros... or close.
    assert metrics["prior_val_v_loss"] < 1.2 and metrics["vae_envelope_lsd_db"] < 12


@pytest.mark.train
def test_training_is_fast_and_deterministic(tmp_path):
    import time

    import torch

    from models import train_prior

    argv = ["--minutes", "0.1", "--vae-steps", "20", "--prior-steps", "10", "--latent", "4", "--hidden", "32",
            "--gru", "16", "--no-progress", "--out", str(tmp_path / "a.onnx")]
    t0 = time.time()
    a = train_prior.train(train_prior.parse_args(argv), log=lambda _m: None)
    b = train_prior.train(train_prior.parse_args(argv), log=lambda _m: None)
    assert time.time() - t0 < 120
    for x, y in zip(a.prior.state_dict().values(), b.prior.state_dict().values(), strict=True):
        assert torch.equal(x, y)


@pytest.mark.train
def test_amount_zero_is_the_reconstruction(prior_model):
    """At amount 0 the sampler returns mu exactly and the envelope edit is zero: the output is the input
    (what the engine gives with the slot bypassed), in both modes."""
    x = music(0.5)
    dry = run(engine(prior_model, amount=0.0, slot_bypass=1.0), x)
    for mode in (0.0, 1.0):
        e = engine(prior_model, amount=0.0, latent_mode=mode)
        y = run(e, x)
        np.testing.assert_allclose(y, dry, atol=1e-5)
        m = e.slots[0].model
        np.testing.assert_allclose(m.z_out[:1], m._mu[:1], atol=1e-6)


@pytest.mark.train
def test_sampler_is_deterministic_per_seed_and_transforms_at_amount_one(prior_model):
    x = music(0.6)
    a = run(engine(prior_model, seed=3, amount=1.0), x)
    b = run(engine(prior_model, seed=3, amount=1.0), x)
    c = run(engine(prior_model, seed=4, amount=1.0), x)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4
    dry = run(engine(prior_model, amount=0.0), x)
    assert np.abs(a - dry).max() > 1e-3


@pytest.mark.train
def test_offline_equals_streamed_bit_for_bit(prior_model, tmp_path):
    import soundfile as sf

    from realtime.io.offline import process_file

    x = music(1024 * 24 / SR)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    p = P.Params()
    p.set("amount", 0.7)
    process_file(tmp_path / "in.wav", tmp_path / "out.wav", [prior_model], block_size=128, seed=2, params=p,
                 show_progress=False)
    offline, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    streamed = run(engine(prior_model, block=128, seed=2, amount=0.7), x)
    np.testing.assert_array_equal(offline[:len(streamed)], streamed)
    # Another block size: the carried GRU state makes it the same audio up to float rounding.
    big = run(engine(prior_model, block=1024, seed=2, amount=0.7), x)
    np.testing.assert_allclose(big, streamed, atol=1e-4)


@pytest.mark.train
def test_freeze_holds_the_decoded_latent(prior_model):
    x = music(0.6)
    e = engine(prior_model, amount=0.8)
    run(e, x[:SR // 4])
    held = e.slots[0].held_z.copy()
    e.params.set("freeze", 1.0)
    run(e, x[SR // 4:])
    m = e.slots[0].model
    np.testing.assert_allclose(m.z_out[0], held, atol=1e-6)
    np.testing.assert_array_equal(e.slots[0].held_z, held)


@pytest.mark.train
def test_silence_stays_silent(prior_model):
    y = run(engine(prior_model, amount=1.0), np.zeros(SR // 2, np.float32))
    assert np.abs(y).max() < 1e-4


# -- direction controls ---------------------------------------------------------------------------------
@pytest.mark.train
def test_offset_scale_and_toward_reach_the_decoded_latent(prior_model):
    x = music(0.4)
    e = engine(prior_model, amount=0.5)
    run(e, x)
    base = e.slots[0].model.z_out[0].copy()
    e.params.set("offset_1", 2.0)
    e.params.set("scale_2", 0.0)
    run(e, x[:1280])
    z = e.slots[0].model.z_out[0]
    assert z[1] == 0.0 and abs(z[0] - base[0]) > 0.5
    # toward 1 replaces the denoised latent by the target (before offset/scale, reset here).
    e.params.reset()
    e.params.set("amount", 0.5)
    target = np.linspace(-1, 1, 8)
    for j, t in enumerate(target):
        e.params.set(f"target_{j + 1}", float(t))
    e.params.set("toward", 1.0)
    run(e, x[:1280])
    np.testing.assert_allclose(e.slots[0].model.z_out[0], target, atol=1e-5)


@pytest.mark.train
def test_capture_through_osc_writes_the_running_latent_into_the_target_knobs(prior_model):
    import time

    from pythonosc.udp_client import SimpleUDPClient

    from realtime.gui.osc import OscServer

    x = music(0.8)
    e = engine(prior_model, amount=0.0)
    osc = OscServer(e.params, 0)
    client = SimpleUDPClient(osc.host, osc.port)

    def send(address: str, value: float) -> None:
        n = osc.applied
        client.send_message(address, value)
        deadline = time.monotonic() + 5
        while osc.applied == n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert osc.applied == n + 1, osc.last_error

    try:
        run(e, x[:SR // 2])
        send("/diffusion/capture", 1.0)
        run(e, x[SR // 2:SR // 2 + 128])
        captured = np.array([e.params.get(f"target_{j + 1}") for j in range(8)])
        np.testing.assert_allclose(captured, e.slots[0].mu_avg[:8], atol=0.05)
        assert np.abs(captured).max() > 0.01
        send("/diffusion/toward", 0.6)
        assert e.params.get("toward") == pytest.approx(0.6)
        send("/diffusion/offset_3", -1.5)
        assert e.params.get("offset_3") == -1.5
    finally:
        osc.close()


def test_direction_knobs_round_trip_through_presets(tmp_path):
    from realtime.gui.presets import capture, load_preset, save_preset

    p = P.Params()
    p.set("toward", 0.4)
    p.set("offset_5", -2.0)
    p.set("scale_8", 3.0)
    p.set("target_16", 1.25)
    p.set("latent_mode", 1.0)
    path = tmp_path / "dir.json"
    save_preset(path, capture(p, [], [], "direction"))
    q = P.Params()
    load_preset(path).apply_params(q)
    for k in ("toward", "offset_5", "scale_8", "target_16", "latent_mode"):
        assert q.get(k) == p.get(k)


@pytest.mark.train
def test_cli_target_file_sets_the_target_and_toward(prior_model, tmp_path):
    import soundfile as sf

    from realtime.cli import apply_direction, build_params, build_parser

    sf.write(tmp_path / "ref.wav", music(0.5, seed=9), SR)
    args = build_parser().parse_args(["process", "in.wav", "out.wav", "--target", str(tmp_path / "ref.wav"),
                                      "--latent-mode", "1"])
    p = build_params(args, [prior_model])
    apply_direction(args, p, [prior_model])
    assert p.get("toward") == pytest.approx(0.7) and p.get("latent_mode") == 1.0
    assert any(p.get(f"target_{j + 1}") != 0.0 for j in range(8))
    args = build_parser().parse_args(["process", "in.wav", "out.wav", "--target", str(tmp_path / "ref.wav"),
                                      "--toward", "0.2"])
    p = build_params(args, [prior_model])
    apply_direction(args, p, [prior_model])
    assert p.get("toward") == pytest.approx(0.2)  # a given --toward is kept


@pytest.mark.train
def test_panel_capture_button_and_direction_knobs(prior_model, qtbot):
    from realtime.gui.window import MainWindow
    from realtime.io.host import ProcessHost

    host = ProcessHost()
    try:
        win = MainWindow(host, models=[str(prior_model)], osc_port=None, midi=False)
        qtbot.addWidget(win)
        win.knobs["offset_2"].write(1.5)
        win.knobs["toward"].write(0.3)
        assert host.params.get("offset_2") == 1.5 and host.params.get("toward") == 0.3
        # The engine reads the same (shared-memory) knobs: pressing Capture takes the running latent.
        e = Engine([prior_model], block_size=128, params=host.params, deadline_share=math.inf)
        host.params.set("offset_2", 0.0)
        x = music(0.5)
        run(e, x[:SR // 4])
        win.capture_button.pressed.emit()
        assert host.params.get("capture") == 1.0
        run(e, x[SR // 4:SR // 4 + 128])
        win.capture_button.released.emit()
        assert host.params.get("capture") == 0.0
        captured = [host.params.get(f"target_{j + 1}") for j in range(8)]
        np.testing.assert_allclose(captured, e.slots[0].mu_avg[:8], atol=0.05)
        win.shutdown()
    finally:
        host.close()
