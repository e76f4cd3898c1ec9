"""Model contract v2: stateful models (state carried, probe, reset, swap) and v1 models unchanged.

Real onnxruntime sessions on real ONNX files built with onnx.helper (export/thirdparty_example.py's stateful
example and variants of it broken in one way each).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.thirdparty_example import (
    SMOOTH_STATE,
    build_stateful_model,
    build_stateful_proto,
    build_thirdparty_model,
)
from realtime.engine import params as P
from realtime.engine.contract import (
    INPUT_AMOUNT,
    OUTPUT_FEATURES,
    STATE_IN,
    STATE_OUT,
    ModelError,
    build_metadata,
    parse_metadata,
)
from realtime.engine.engine import SWAP_XFADE_FRAMES, Engine
from realtime.engine.model import EffectModel

SR = 48000


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def run(engine: Engine, x: np.ndarray, block: int) -> np.ndarray:
    y = np.zeros_like(x)
    for i in range(0, len(x) - block + 1, block):
        engine.process_block(x[i:i + block], y[i:i + block])
    return y


@pytest.fixture(scope="module")
def stateful(tmp_path_factory) -> Path:
    return build_stateful_model(tmp_path_factory.mktemp("v2") / "stateful.onnx")


@pytest.fixture(scope="module")
def stateless(tmp_path_factory) -> Path:
    return build_thirdparty_model(tmp_path_factory.mktemp("v1") / "stateless.onnx")


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save_model(model, str(path))
    return path


def _set_props(model: onnx.ModelProto, **changes: str) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    del model.metadata_props[:]
    helper.set_model_props(model, props)


# -- metadata and I/O checks -------------------------------------------------------------------------


def test_state_shapes_metadata_is_parsed_and_validated():
    from realtime.config import DEFAULT
    props = build_metadata(kind="diffusion", cfg=DEFAULT, latent_dim=8, name="x", training_data="t", producer="p",
                           state_shapes={"gru": [1, 64], "conv": [1, 32, 3]})
    info = parse_metadata(props)
    assert info.contract_version == 2 and info.state_shapes == {"gru": (1, 64), "conv": (1, 32, 3)}
    assert parse_metadata(info.metadata()).state_shapes == info.state_shapes
    # Stateless models still get contract 1 from build_metadata (loadable by older hosts).
    assert build_metadata(kind="diffusion", cfg=DEFAULT, latent_dim=8, name="x", training_data="t",
                          producer="p")["contract_version"] == "1"
    for bad, words in (('{"gru": [1, -1]}', "positive integers"), ('{"gru": []}', "non-empty"),
                       ("[1, 2]", "JSON object"), ("{", "not valid JSON"), ('{"a b": [1]}', "letters")):
        with pytest.raises(ModelError, match=words):
            parse_metadata({**props, "state_shapes": bad})
    with pytest.raises(ModelError, match="needs contract_version '2'"):
        parse_metadata({**props, "contract_version": "1"})


def test_state_tensors_must_match_the_declared_shapes(tmp_path):
    m = build_stateful_proto()
    _set_props(m, state_shapes='{"smooth": [1, 1, 9]}')
    with pytest.raises(ModelError, match=r"'state_in_smooth' has shape .* expected exactly \[1, 1, 9\]"):
        EffectModel(_save(m, tmp_path / "shape.onnx"))
    m = build_stateful_proto()
    _set_props(m, state_shapes='{"other": [1, 1, 8]}')
    with pytest.raises(ModelError, match="not declared in the metadata 'state_shapes'"):
        EffectModel(_save(m, tmp_path / "undeclared.onnx"))
    m = build_stateful_proto()
    _set_props(m, contract_version="1", state_shapes="")
    with pytest.raises(ModelError, match="stateful models are not supported by contract v1"):
        EffectModel(_save(m, tmp_path / "v1.onnx"))


def test_v1_models_load_unchanged(stateless):
    m = EffectModel(stateless)
    assert m.info.contract_version == 1 and not m.stateful and m.optional_inputs == () and not m.has_z
    shipped = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "denoise.onnx"
    assert EffectModel(shipped).info.contract_version in (1, 2)


# -- the probe ---------------------------------------------------------------------------------------


def _non_causal(path: Path) -> Path:
    """The stateful example whose output row t is computed from input row t + 1 (a frame of look-ahead)."""
    m = build_stateful_proto()
    g = m.graph
    g.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), "la_start"),
                          numpy_helper.from_array(np.array([1 << 30], np.int64), "la_end"),
                          numpy_helper.from_array(np.array([0], np.int64), "la_axis"),
                          numpy_helper.from_array(np.array([-1], np.int64), "la_last")])
    for node in g.node:
        if node.output[0] == OUTPUT_FEATURES:
            node.output[0] = "out_pre"
    g.node.extend([
        helper.make_node("Slice", ["out_pre", "la_start", "la_end", "la_axis"], ["ahead"]),
        helper.make_node("Slice", ["out_pre", "la_last", "la_end", "la_axis"], ["last_row"]),
        helper.make_node("Concat", ["ahead", "last_row"], [OUTPUT_FEATURES], axis=0),
    ])
    return _save(m, path)


def _ignores_state(path: Path) -> Path:
    """A model that keeps context within one call (a running sum over its frames) but drops it between
    calls: its state output is its state input. One call over N frames != N one-frame calls."""
    m = build_stateful_proto()
    g = m.graph
    g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "cs_axis"))
    for node in g.node:
        if node.output[0] == OUTPUT_FEATURES:
            node.output[0] = "out_pre"
        if STATE_OUT + SMOOTH_STATE in node.output:
            node.output[list(node.output).index(STATE_OUT + SMOOTH_STATE)] = "unused_state"
    g.node.extend([
        helper.make_node("CumSum", [INPUT_AMOUNT, "cs_axis"], ["a_sum"]),
        helper.make_node("Add", ["out_pre", "a_sum"], [OUTPUT_FEATURES]),
        helper.make_node("Identity", [STATE_IN + SMOOTH_STATE], [STATE_OUT + SMOOTH_STATE]),
    ])
    return _save(m, path)


def test_probe_accepts_the_stateful_example(stateful):
    m = EffectModel(stateful)
    assert m.stateful and m.state_shapes == {SMOOTH_STATE: (1, 1, 8)}
    assert not m.state[SMOOTH_STATE].any(), "a loaded model starts from the zero state"


def test_probe_rejects_a_model_that_looks_ahead(tmp_path):
    with pytest.raises(ModelError, match="must be causal"):
        EffectModel(_non_causal(tmp_path / "ahead.onnx"))


def test_probe_rejects_a_model_whose_frames_depend_on_the_call(tmp_path):
    with pytest.raises(ModelError, match="run alone with the state carried differs from one call"):
        EffectModel(_ignores_state(tmp_path / "ignores.onnx"))


# -- the engine carries the state ---------------------------------------------------------------------


def _engine(path, block: int, amount: float = 0.8, **kw) -> Engine:
    kw.setdefault("deadline_share", math.inf)  # offline: a busy test machine must not turn frames dry
    params = P.Params()
    params.set("amount", amount)  # before the engine: its reset starts the smoothed amount there
    return Engine([path], block_size=block, seed=3, params=params, **kw)


def test_state_is_carried_between_calls(stateful):
    """Blocks of 128 samples (one frame per call) and of 1024 (eight frames per call) give the same audio
    only if the state comes back into the next call; with the state dropped between calls they differ."""
    x = tone(1024 * 48 / SR)
    e1, e8 = _engine(stateful, 128), _engine(stateful, 1024)
    y1, y8 = run(e1, x, 128), run(e8, x, 1024)
    assert e1.slots[0].model.state[SMOOTH_STATE].any()
    np.testing.assert_allclose(y1, y8, atol=2e-5)
    # The same engine with its state zeroed before every call: audibly different (the smoother restarts).
    e0 = _engine(stateful, 128)
    m = e0.slots[0].model
    y0 = np.zeros_like(x)
    for i in range(0, len(x) - 127, 128):
        m.reset_state()
        e0.process_block(x[i:i + 128], y0[i:i + 128])
    assert np.abs(y0 - y1).max() > 100 * np.abs(y8 - y1).max() + 1e-4


def test_reset_zeroes_state_and_repeats_the_output(stateful):
    x = tone(0.5)
    e = _engine(stateful, 128)
    first = run(e, x, 128)
    assert e.slots[0].model.state[SMOOTH_STATE].any()
    e.reset()
    assert not e.slots[0].model.state[SMOOTH_STATE].any()
    np.testing.assert_array_equal(run(e, x, 128), first)


def test_a_failed_call_leaves_the_state_as_before(tmp_path):
    """A stateful model returning NaN above amount 0.9: the fallback block does not advance the state."""
    m = build_stateful_proto()
    g = m.graph
    g.initializer.extend([numpy_helper.from_array(np.array(0.9, np.float32), "thr"),
                          numpy_helper.from_array(np.array(np.nan, np.float32), "nanv"),
                          numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    for node in g.node:
        if node.output[0] == OUTPUT_FEATURES:
            node.output[0] = "out_pre"
    g.node.extend([helper.make_node("Greater", [INPUT_AMOUNT, "thr"], ["on"]),
                   helper.make_node("Where", ["on", "nanv", "zero"], ["add"]),
                   helper.make_node("Add", ["out_pre", "add"], [OUTPUT_FEATURES])])
    path = _save(m, tmp_path / "nan.onnx")
    e = _engine(path, 128, amount=0.6)
    x = tone(0.3)
    run(e, x, 128)
    model = e.slots[0].model
    before = model.state[SMOOTH_STATE].copy()
    assert before.any()
    e.params.set("amount", 1.0)
    e.slots[0].amount = 1.0  # jump the smoothed amount: the next call fails at once
    y = np.zeros(128, np.float32)
    misses = e.stats.summary()["misses"]
    e.process_block(x[:128], y)
    assert e.stats.summary()["misses"] == misses + 1 and np.isfinite(y).all()
    np.testing.assert_array_equal(model.state[SMOOTH_STATE], before)


def test_hot_swap_between_stateful_and_stateless_crossfades_without_a_click(stateful, stateless):
    x = tone(3.0)
    blk = 128

    def jumps(y: np.ndarray) -> float:
        return float(np.abs(np.diff(y)).max())

    ref = {p: jumps(run(_engine(p, blk, amount=0.5), x, blk)[SR // 4:]) for p in (stateful, stateless)}
    e = _engine(stateless, blk, amount=0.5)
    y = np.zeros_like(x)
    pos = 0

    def advance(blocks: int) -> None:
        nonlocal pos
        for _ in range(blocks):
            e.process_block(x[pos:pos + blk], y[pos:pos + blk])
            pos += blk

    advance(100)
    for target in (stateful, stateless, stateful):  # the last swap reuses the cached stateful model
        new = e.swap_model(target)
        if new.stateful:
            assert not new.state[SMOOTH_STATE].any(), "a model enters a slot from the zero state"
        advance(SWAP_XFADE_FRAMES + 40)
        assert e.slots[0].model is new
        if new.stateful:
            assert new.state[SMOOTH_STATE].any(), "the swapped-in model carries its state"
    assert e.stats.summary()["swaps"] == 3 and e.stats.summary()["misses"] == 0
    worst = jumps(y[SR // 4:pos])
    assert worst <= 1.5 * max(ref.values()), (worst, ref)


def test_two_slots_never_share_one_stateful_model_instance(stateful):
    m = EffectModel(stateful, max_frames=8)
    e = Engine([m, m], block_size=128)
    assert e.slots[0].model is not e.slots[1].model
    e.params.set("amount", 0.8, slot=1)
    run(e, tone(0.2), 128)
    assert not np.array_equal(e.slots[0].model.state[SMOOTH_STATE], e.slots[1].model.state[SMOOTH_STATE])


def test_optional_inputs_are_declared_and_fed_with_defaults(tmp_path):
    """A contract-2 model with optional inputs gets them at their documented defaults (and freeze from its knob)."""
    m = build_stateful_proto()
    g = m.graph
    g.input.append(helper.make_tensor_value_info("latent_scale", TensorProto.FLOAT, ["frames", 8]))
    g.input.append(helper.make_tensor_value_info("freeze", TensorProto.FLOAT, ["frames", 1]))
    for node in g.node:
        if node.output[0] == "z":
            node.output[0] = "z_pre"
    g.node.append(helper.make_node("Mul", ["z_pre", "latent_scale"], ["z_scaled"]))
    g.node.append(helper.make_node("Add", ["z_scaled", "freeze"], ["z"]))
    model = EffectModel(_save(m, tmp_path / "opt.onnx"))
    assert model.optional_inputs == ("latent_scale", "freeze")
    assert (model.extra_in["latent_scale"] == 1.0).all() and (model.extra_in["freeze"] == 0.0).all()
    e = Engine([model], block_size=128)
    e.params.set("freeze", 1.0)
    run(e, tone(0.1), 128)
    assert (e.slots[0].model.extra_in["freeze"][:1] == 1.0).all()
    assert P.SPEC_BY_NAME["freeze"].toggle
