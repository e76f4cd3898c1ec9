"""The stateful denoiser: contract-v2 export, streamed == one call, strength 0 is bypass; de-hum finds 50 vs 60 Hz."""

import numpy as np
import pytest

from realtime.dsp.dehum import Dehum

SR = 48_000


def untrained_denoiser(path):
    """An untrained stateful denoiser (1 x 32 GRU) exported as contract v2 at ``path``, gains made to vary."""
    torch = pytest.importorskip("torch")
    from export.denoiser_export import export_denoiser
    from models.denoiser import StatefulDenoiser

    torch.manual_seed(0)
    model = StatefulDenoiser(hidden=32, layers=1)
    with torch.no_grad():  # make the gains vary (an untrained head is nearly constant)
        model.band_head.weight.mul_(20.0)
        model.band_head.bias.fill_(-1.0)
    return export_denoiser(model, path, training_data="untrained (test)", name="test denoiser")


@pytest.fixture(scope="module")
def untrained_onnx(tmp_path_factory):
    return untrained_denoiser(tmp_path_factory.mktemp("restore") / "denoise-test.onnx")


def _feats(frames=300, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((frames, 257)) * 2.0 - 5.0).astype(np.float32)


def test_export_declares_contract_v2_states(untrained_onnx):
    import json

    import onnx

    m = onnx.load(str(untrained_onnx))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["contract_version"] == "2"
    shapes = json.loads(meta["state_shapes"])
    names = [i.name for i in m.graph.input]
    assert names[:3] == ["features", "amount", "noise"]
    for k in shapes:
        assert f"state_in_{k}" in names
        assert f"state_out_{k}" in [o.name for o in m.graph.output]


@pytest.mark.parametrize("per_call", [1, 3, 64])
def test_streamed_equals_one_call(untrained_onnx, per_call):
    from export.denoiser_export import _session, gain_diff, run_stream

    sess = _session(untrained_onnx)
    feats = _feats()
    whole, h_whole = run_stream(sess, feats)
    parts, h_parts = run_stream(sess, feats, frames_per_call=per_call)
    assert gain_diff(whole, parts, feats) < 1e-4
    assert np.abs(h_whole - h_parts).max() < 1e-4
    # the state matters: the same frames from a fresh state give another output
    again, _ = run_stream(sess, feats[150:])
    assert np.abs(again - whole[150:]).max() > 1e-3


def test_strength_zero_is_bypass_and_full_strength_attenuates(untrained_onnx):
    from export.denoiser_export import _session, run_stream

    sess = _session(untrained_onnx)
    feats = _feats()
    out0, _ = run_stream(sess, feats, amount=0.0)
    assert np.array_equal(out0, feats)
    out1, _ = run_stream(sess, feats, amount=1.0)
    assert (out1 <= feats + 1e-6).all()
    assert (feats - out1).max() > 3.0  # > 26 dB on some bins
    # half strength limits the attenuation to 30 dB (floor 10^-1.5 minus 0.05 %)
    out_half, _ = run_stream(sess, feats, amount=0.5)
    limit = -np.log(10 ** -1.5 - 5e-4)
    assert (feats - out_half).max() <= limit + 1e-4


def _hum(mains, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = mains * 1.003
    hum = sum(h ** -1.0 * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) for h in range(1, 9))
    return (0.05 * hum).astype(np.float32), (0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_dehum_finds_mains_and_removes_it(mains):
    hum, bg = _hum(mains)
    x = hum + bg
    d = Dehum(SR)
    y = np.zeros_like(x)
    for i in range(0, x.size, 128):
        d.process(x[i:i + 128], y[i:i + 128])
    assert d.mains_hz == mains
    tail = slice(SR, None)  # after a second of adaptation
    before = np.mean((x[tail] - bg[tail]) ** 2)
    after = np.mean((y[tail] - bg[tail]) ** 2)
    assert 10 * np.log10(before / after) > 15.0


def test_dehum_disabled_passes_and_silence_decides_nothing():
    hum, bg = _hum(50.0, seconds=1.0)
    d = Dehum(SR)
    y = np.zeros_like(hum)
    d.process(hum, y, enabled=False)
    assert np.array_equal(y, hum)
    d2 = Dehum(SR)
    z = np.zeros(SR, np.float32)
    d2.process(z, z)
    assert d2.mains_hz == 0.0 and not z.any()


def test_declick_repairs_clicks_and_leaves_a_tone_alone():
    from realtime.dsp.declick import Declick

    t = np.arange(SR) / SR
    tone = (0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)
    clicks = np.zeros_like(tone)
    clicks[np.random.default_rng(0).integers(SR // 4, SR, 30)] = 0.8
    for x, clean, want_clicks in ((tone, tone, False), (tone + clicks, tone, True)):
        d = Declick(SR)
        y = np.zeros_like(x)
        for i in range(0, x.size, 128):
            d.process(x[i:i + 128], y[i:i + 128])
        err_in = np.sum((x - clean) ** 2) + 1e-12
        err_out = np.sum((y - clean) ** 2)
        if want_clicks:
            assert d.clicks >= 25 and 10 * np.log10(err_in / err_out) > 15.0
        else:
            assert d.clicks <= 2 and err_out < 1e-6 * np.sum(clean ** 2)


def test_engine_dehum_knob_acts_before_the_stft():
    from realtime.engine.engine import Engine
    from realtime.io.offline import process_signal

    hum, bg = _hum(60.0, seconds=2.0)
    x = hum + bg
    outs = {}
    for on in (0.0, 1.0):
        e = Engine(["models/pretrained/default.onnx"], block_size=128, deadline_share=float("inf"))
        e.params.set("mix", 0.0)  # the dry path, which hears the repair too
        e.params.set("dehum", on)
        e.reset()  # start at the knobs' values (no smoothing ramp)
        outs[on] = process_signal(e, x)
    d = e.latency_samples
    assert np.allclose(outs[0.0][d:], x[:-d], atol=1e-6)
    tail = slice(SR, None)
    resid = outs[1.0][d:][tail] - bg[:-d][tail]
    assert 10 * np.log10(np.mean(hum[:-d][tail] ** 2) / np.mean(resid ** 2)) > 15.0


def test_engine_runs_the_stateful_denoiser_streamed_as_offline(untrained_onnx):
    from realtime.engine.engine import Engine
    from realtime.io.offline import default_amount, process_signal

    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    x = (0.1 * np.sin(2 * np.pi * 220 * t) * (t > 0.3) + 0.02 * rng.standard_normal(SR)).astype(np.float32)
    outs = {}
    for block in (128, 8192):
        # no deadline: on a busy machine a late block would fall back to dry and differ
        e = Engine([str(untrained_onnx)], block_size=block, deadline_share=float("inf"))
        assert e.slots[0].model.info.contract_version == 2
        e.params.set("amount", default_amount(e.slots[0].model))
        e.reset()
        outs[block] = process_signal(e, x)
    assert default_amount(str(untrained_onnx)) == 1.0
    assert np.abs(outs[128] - outs[8192]).max() < 1e-5
    d = e.latency_samples
    assert np.abs(outs[128][d:] - x[:-d]).max() > 1e-3  # it did something
