"""Model contract v1: metadata parsing, STFT compatibility and I/O checks (no onnxruntime needed)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.config import DEFAULT, StftConfig
from realtime.dsp.features import FEATURE_TYPE
from realtime.engine import contract
from realtime.engine.contract import (
    OPTIONAL_METADATA,
    REQUIRED_METADATA,
    ModelError,
    ModelInfo,
    build_metadata,
    check_config,
    check_io,
    parse_metadata,
)


def good_props(**changes: str | None) -> dict[str, str]:
    props = build_metadata(kind="diffusion", cfg=DEFAULT, latent_dim=8, name="t", training_data="none",
                           producer="tests", description="d", metrics={"lsd_db": 2.5})
    for key, value in changes.items():
        if value is None:
            props.pop(key)
        else:
            props[key] = value
    return props


def error(props: dict, path: str | None = "m.onnx") -> str:
    with pytest.raises(ModelError) as exc:
        parse_metadata(props, path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


def test_contract_module_does_not_import_onnx():
    tree = ast.parse(Path(contract.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {"onnx", "onnxruntime"} & {str(n).split(".")[0] for n in names}


def test_good_metadata_round_trips():
    props = good_props()
    assert set(props) == set(REQUIRED_METADATA) | set(OPTIONAL_METADATA)
    info = parse_metadata(props, "dir/m.onnx")
    assert info == ModelInfo(path=Path("dir/m.onnx"), name="t", kind="diffusion", contract_version=1,
                             sample_rate=48000, n_fft=512, hop=128, window="sqrt_hann",
                             feature_type=FEATURE_TYPE, latent_dim=8, added_delay_samples=0,
                             training_data="none", producer="tests", description="d",
                             metrics={"lsd_db": 2.5})
    assert info.metadata() == props
    assert info.n_bins == 257 and info.stft_config() == DEFAULT
    assert info.stft_config("low_latency").window == "low_latency"


def test_optional_keys_may_be_absent_and_unknown_keys_are_ignored():
    info = parse_metadata(good_props(description=None, metrics=None, extra_key="x"))
    assert info.description == "" and info.metrics == {}


@pytest.mark.parametrize("key", list(REQUIRED_METADATA))
def test_each_missing_required_key_is_named(key):
    msg = error(good_props(**{key: None}))
    assert "missing metadata key" in msg and f"'{key}'" in msg and msg.startswith("m.onnx: ")


@pytest.mark.parametrize(("changes", "words"), [
    ({"contract_version": "99"}, ("unsupported contract version 99", "supports 1")),
    ({"contract_version": "one"}, ("contract_version", "integer")),
    ({"model_kind": "reverb"}, ("unknown model_kind 'reverb'", "diffusion, restoration")),
    ({"sample_rate": "48k"}, ("'sample_rate'", "integer", "48k")),
    ({"sample_rate": "0"}, ("'sample_rate'", ">= 1")),
    ({"n_fft": "500", "hop": "128"}, ("not a multiple of hop",)),
    ({"window": "hamming"}, ("unknown window 'hamming'", "sqrt_hann")),
    ({"feature_type": "mel80"}, ("feature_type 'mel80'", FEATURE_TYPE)),
    ({"latent_dim": "0"}, ("'latent_dim'", ">= 1")),
    ({"added_delay_samples": "-1"}, ("'added_delay_samples'", ">= 0")),
    ({"name": "  "}, ("'name'", "empty")),
    ({"training_data": ""}, ("'training_data'", "empty")),
    ({"metrics": "{oops"}, ("'metrics'", "not valid JSON")),
    ({"metrics": "[1, 2]"}, ("'metrics'", "JSON object", "list")),
])
def test_bad_values_name_the_problem(changes, words):
    msg = error(good_props(**changes))
    for word in words:
        assert word in msg


def test_non_string_value_is_rejected():
    assert "must be a string" in error({**good_props(), "latent_dim": 8})


def test_contract_version_is_checked_before_other_keys():
    # A future contract may rename keys: report the version, not the keys this host happens to know.
    msg = error({"contract_version": "3", "something_new": "x"})
    assert "unsupported contract version 3" in msg


def test_build_metadata_validates():
    with pytest.raises(ModelError, match="model_kind"):
        build_metadata(kind="chorus", cfg=DEFAULT, latent_dim=8, name="n", training_data="t", producer="p")


def test_model_error_is_always_one_line():
    assert str(ModelError("first\nsecond  \t third\n")) == "first second third"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(REQUIRED_METADATA) + list(OPTIONAL_METADATA) + ["x"]),
                       st.text(max_size=12)))
def test_arbitrary_metadata_parses_or_raises_model_error(props):
    try:
        parse_metadata(props, "f.onnx")
    except ModelError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("f.onnx: ")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(REQUIRED_METADATA)), st.text(max_size=8))
def test_one_corrupted_key_parses_or_raises_model_error(key, value):
    try:
        info = parse_metadata(good_props(**{key: value}))
    except ModelError:
        return
    assert info.contract_version == 1


# -- STFT compatibility ----------------------------------------------------------------------------

def info_for(cfg: StftConfig, latent_dim: int = 8) -> ModelInfo:
    props = build_metadata(kind="restoration", cfg=cfg, latent_dim=latent_dim, name="n", training_data="t",
                           producer="p")
    return parse_metadata(props, "m.onnx")


def test_check_config_accepts_same_and_other_window_mode():
    check_config(info_for(DEFAULT), DEFAULT)
    check_config(info_for(DEFAULT), StftConfig(window="low_latency"))
    check_config(info_for(StftConfig(window="low_latency")), DEFAULT)


@pytest.mark.parametrize(("engine", "words"), [
    (StftConfig(sample_rate=44100), ("48000 Hz", "44100 Hz", "run the engine at 48000 Hz")),
    (StftConfig(n_fft=1024), ("n_fft 512", "n_fft 1024", "re-export the model for n_fft 1024")),
    (StftConfig(hop=256), ("hop 128", "hop 256", "run the engine with hop 128")),
])
def test_check_config_names_both_values_and_the_fix(engine, words):
    with pytest.raises(ModelError) as exc:
        check_config(info_for(DEFAULT), engine)
    for word in words:
        assert word in str(exc.value)


# -- I/O checks (fake NodeArgs) --------------------------------------------------------------------

def arg(name: str, shape, dtype: str = "tensor(float)") -> SimpleNamespace:
    return SimpleNamespace(name=name, shape=shape, type=dtype)


def io(**overrides):
    ins = {"features": arg("features", ["frames", 257]), "amount": arg("amount", ["frames", 1]),
           "noise": arg("noise", ["frames", 8])}
    outs = {"out_features": arg("out_features", ["frames", 257]), "mu": arg("mu", [None, 8])}
    for name, value in overrides.items():
        target = ins if name in ins else outs
        target[name] = value
    return list(ins.values()), list(outs.values())


def io_error(**overrides) -> str:
    with pytest.raises(ModelError) as exc:
        check_io(*io(**overrides), info_for(DEFAULT), 257)
    return str(exc.value)


def test_check_io_accepts_symbolic_and_unknown_frames():
    check_io(*io(), info_for(DEFAULT), 257)


def test_check_io_errors():
    assert "wrong input names" in io_error(noise=arg("z", ["frames", 8]))
    assert "wrong output names" in io_error(mu=arg("latent", ["frames", 8]))
    assert "dtype double" in io_error(amount=arg("amount", ["frames", 1], "tensor(double)"))
    assert "rank 1" in io_error(amount=arg("amount", ["frames"]))
    assert "fixed frames axis of 4" in io_error(features=arg("features", [4, 257]))
    assert "expected latent_dim 8" in io_error(mu=arg("mu", ["frames", 16]))
    assert "expected n_bins 257" in io_error(out_features=arg("out_features", ["frames", 513]))
    assert "expected width 1" in io_error(amount=arg("amount", ["frames", 2]))
    ins, outs = io()
    with pytest.raises(ModelError, match="stateful models are not supported"):
        check_io(ins + [arg("state_in", ["frames", 4])], outs, info_for(DEFAULT), 257)
