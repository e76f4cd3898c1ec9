"""Model contracts v1 and v2: the names, shapes and metadata an effect model must have (docs/model-contract.md).

Contract 2 adds stateful models (``state_in_<name>`` / ``state_out_<name>`` tensors of fixed shapes declared
in the ``state_shapes`` metadata, carried by the engine between calls) and optional control inputs
(:data:`OPTIONAL_INPUTS`). Contract 1 models load unchanged.

Exporters (``export/``) import the constants and :func:`build_metadata` from here; the engine's loader
(:mod:`realtime.engine.model`) checks a model with :func:`parse_metadata`, :func:`check_config` and
:func:`check_io`. This module imports neither ``onnx`` nor ``onnxruntime``: the I/O checks take any
objects with ``.name``, ``.shape`` and ``.type`` (onnxruntime's ``NodeArg``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.config import FEATURE_TYPE, WINDOW_MODES, StftConfig
from realtime.errors import ModelError  # noqa: F401 - raised here, re-exported

#: The newest contract this host implements (what :func:`build_metadata` writes for a stateful model).
CONTRACT_VERSION = 2
SUPPORTED_CONTRACT_VERSIONS = (1, 2)

INPUT_FEATURES = "features"
INPUT_AMOUNT = "amount"
INPUT_NOISE = "noise"
OUTPUT_FEATURES = "out_features"
OUTPUT_MU = "mu"
INPUT_NAMES = (INPUT_FEATURES, INPUT_AMOUNT, INPUT_NOISE)
OUTPUT_NAMES = (OUTPUT_FEATURES, OUTPUT_MU)
#: Symbolic name of the dynamic batch axis (one row per STFT frame).
FRAMES_AXIS = "frames"
#: Reserved for stateful models; contract 1 rejects them (see docs/model-contract.md).
RESERVED_STATE_NAMES = ("state_in", "state_out")
#: Contract 2: the graph input / output carrying state ``N`` are ``STATE_IN + N`` / ``STATE_OUT + N``.
STATE_IN = "state_in_"
STATE_OUT = "state_out_"
#: Contract 2 optional inputs: name -> (width: "latent" or 1, value the engine feeds when no knob drives it,
#: meaning). A model declares any subset; the engine feeds those it declares, rows in time order.
OPTIONAL_INPUTS: dict[str, tuple[str | int, float, str]] = {
    "latent_offset": ("latent", 0.0, "added to the latent before decoding (per dimension)"),
    "latent_scale": ("latent", 1.0, "multiplies the latent before decoding (per dimension)"),
    "target": ("latent", 0.0, "a captured target latent the denoiser is guided toward"),
    "toward": (1, 0.0, "strength of the guidance toward 'target', 0..1"),
    "latent_mode": (1, 0.0, "0: the model's learned prior (SDEdit); 1: the plain noise mix of contract 1"),
    "freeze": (1, 0.0, "1: decode 'noise' as the latent itself (the held latent), skipping the sampler"),
}
#: Contract 2 optional outputs: ``z`` [frames, latent_dim] is the latent actually decoded (the engine holds it
#: for freeze instead of recomputing the contract-1 mix from ``mu`` and ``noise``).
OUTPUT_Z = "z"
OPTIONAL_OUTPUTS = (OUTPUT_Z,)
#: Largest state tensor accepted (elements): state is copied every call inside the audio callback.
MAX_STATE_ELEMENTS = 1 << 16

MODEL_KINDS = ("diffusion", "restoration")

#: Every metadata key a contract-1 model must carry (all values are strings), with its meaning.
REQUIRED_METADATA: dict[str, str] = {
    "contract_version": "model contract version, '1'",
    "model_kind": "'diffusion' (latent diffusion effect) or 'restoration' (denoiser etc.)",
    "sample_rate": "audio rate in Hz the model was trained at, e.g. '48000'",
    "n_fft": "STFT frame length in samples, e.g. '512'",
    "hop": "STFT hop in samples, e.g. '128'",
    "window": "window mode trained with: 'sqrt_hann' or 'low_latency'",
    "feature_type": f"input/output feature definition, must be '{FEATURE_TYPE}'",
    "latent_dim": "width of the noise input and mu output",
    "added_delay_samples": "extra delay the model adds beyond the STFT (samples, >= 0; '0' for frame-wise)",
    "training_data": "what the model was trained on (provenance and licence)",
    "producer": "tool and version that made the file",
    "name": "short display name",
}
#: Keys only contract 2 knows (optional there).
V2_METADATA: dict[str, str] = {
    "state_shapes": "JSON object, state name -> fixed shape list, e.g. '{\"gru\": [1, 64]}' (absent: stateless)",
}
OPTIONAL_METADATA: dict[str, str] = {
    "description": "free text shown by `audio-diffusion info`",
    "metrics": "JSON object of evaluation numbers, e.g. '{\"lsd_db\": 2.6}'",
}

_INT_KEYS = ("contract_version", "sample_rate", "n_fft", "hop", "latent_dim", "added_delay_samples")
_TEXT_KEYS = ("training_data", "producer", "name")
_DOC = "docs/model-contract.md"


@dataclass(frozen=True)
class ModelInfo:
    """What a model declares about itself (parsed, typed metadata)."""

    path: Path
    name: str
    kind: str
    contract_version: int
    sample_rate: int
    n_fft: int
    hop: int
    window: str
    feature_type: str
    latent_dim: int
    added_delay_samples: int
    training_data: str
    producer: str
    description: str = ""
    metrics: dict = field(default_factory=dict, hash=False)
    #: Contract 2: state name -> fixed shape (empty for a stateless model).
    state_shapes: dict = field(default_factory=dict, hash=False)

    @property
    def stateful(self) -> bool:
        return bool(self.state_shapes)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def stft_config(self, window: str | None = None) -> StftConfig:
        """The :class:`StftConfig` the model was trained with (optionally in another window mode)."""
        return StftConfig(self.sample_rate, self.n_fft, self.hop, window or self.window)

    def metadata(self) -> dict[str, str]:
        """The metadata strings again (what an exporter writes)."""
        out = {
            "contract_version": str(self.contract_version), "model_kind": self.kind,
            "sample_rate": str(self.sample_rate), "n_fft": str(self.n_fft), "hop": str(self.hop),
            "window": self.window, "feature_type": self.feature_type, "latent_dim": str(self.latent_dim),
            "added_delay_samples": str(self.added_delay_samples), "training_data": self.training_data,
            "producer": self.producer, "name": self.name,
        }
        if self.description:
            out["description"] = self.description
        if self.metrics:
            out["metrics"] = json.dumps(self.metrics, sort_keys=True)
        if self.state_shapes:
            out["state_shapes"] = json.dumps({k: list(v) for k, v in self.state_shapes.items()})
        return out


def _label(path: str | Path | None) -> str:
    return f"{Path(path).name}: " if path else ""


def _int(props: Mapping[str, str], key: str, where: str, minimum: int) -> int:
    raw = props[key]
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):
        raise ModelError(f"{where}metadata key '{key}' must be an integer string, got {raw!r}; "
                         f"re-export with e.g. {key}='{max(minimum, 1)}'") from None
    if value < minimum:
        raise ModelError(f"{where}metadata key '{key}' must be >= {minimum}, got {value}; fix the exporter")
    return value


def parse_metadata(props: Mapping[str, str], path: str | Path | None = None) -> ModelInfo:
    """Validate model metadata and return it typed.

    Parameters
    ----------
    props : mapping of str to str
        ``session.get_modelmeta().custom_metadata_map`` (or the dict an exporter is about to write).
    path : str or Path, optional
        The model file, used in messages and stored in the result.

    Raises
    ------
    ModelError
        Naming the first bad key and how to fix it. Unknown extra keys are ignored.
    """
    where = _label(path)
    for key, value in props.items():
        if not isinstance(value, str):
            raise ModelError(f"{where}metadata key '{key}' must be a string, got {type(value).__name__}; "
                             "write every metadata value as a string")
    # The version decides what the other keys mean, so it is checked first.
    if "contract_version" not in props:
        raise ModelError(f"{where}missing metadata key 'contract_version' (not an Audio Diffusion Host "
                         "model?); "
                         f"re-export with all metadata of model contract v{CONTRACT_VERSION} ({_DOC})")
    version = _int(props, "contract_version", where, 0)
    if version not in SUPPORTED_CONTRACT_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_CONTRACT_VERSIONS))
        raise ModelError(f"{where}unsupported contract version {version} (this host supports {supported}); "
                         f"re-export with contract_version={CONTRACT_VERSION} or update the host")
    missing = [k for k in REQUIRED_METADATA if k not in props]
    if missing:
        keys = ", ".join(f"'{k}'" for k in missing)
        plural = "s" if len(missing) > 1 else ""
        raise ModelError(f"{where}missing metadata key{plural} {keys}; "
                         f"re-export with all metadata of model contract v{CONTRACT_VERSION} ({_DOC})")
    kind = props["model_kind"].strip()
    if kind not in MODEL_KINDS:
        raise ModelError(f"{where}unknown model_kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    sample_rate = _int(props, "sample_rate", where, 1)
    n_fft = _int(props, "n_fft", where, 2)
    hop = _int(props, "hop", where, 1)
    if n_fft % hop:
        raise ModelError(f"{where}n_fft {n_fft} is not a multiple of hop {hop}; "
                         "re-export with a hop dividing n_fft")
    window = props["window"].strip()
    if window not in WINDOW_MODES:
        raise ModelError(f"{where}unknown window {window!r}; use one of {', '.join(WINDOW_MODES)}")
    feature_type = props["feature_type"].strip()
    if feature_type != FEATURE_TYPE:
        raise ModelError(f"{where}unsupported feature_type {feature_type!r}; the host feeds "
                         f"'{FEATURE_TYPE}' (log(|X| + 1e-5)); retrain or re-export with those features")
    latent_dim = _int(props, "latent_dim", where, 1)
    delay = _int(props, "added_delay_samples", where, 0)
    text = {}
    for key in _TEXT_KEYS:
        text[key] = props[key].strip()
        if not text[key]:
            raise ModelError(f"{where}metadata key '{key}' is empty; re-export with a value for it")
    metrics: dict[str, Any] = {}
    if props.get("metrics", "").strip():
        try:
            metrics = json.loads(props["metrics"])
        except json.JSONDecodeError as exc:
            raise ModelError(f"{where}metadata key 'metrics' is not valid JSON ({exc.msg}); "
                             "write a JSON object or leave it out") from None
        if not isinstance(metrics, dict):
            raise ModelError(f"{where}metadata key 'metrics' must be a JSON object, got "
                             f"{type(metrics).__name__}; write a JSON object or leave it out")
    state_shapes = _parse_state_shapes(props, version, where)
    return ModelInfo(
        path=Path(path) if path else Path(), name=text["name"], kind=kind, contract_version=version,
        sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window, feature_type=feature_type,
        latent_dim=latent_dim, added_delay_samples=delay, training_data=text["training_data"],
        producer=text["producer"], description=props.get("description", "").strip(), metrics=metrics,
        state_shapes=state_shapes,
    )


def _parse_state_shapes(props: Mapping[str, str], version: int, where: str) -> dict[str, tuple[int, ...]]:
    """The ``state_shapes`` key: absent or ``{}`` is a stateless model; only contract 2 may declare state."""
    raw = props.get("state_shapes", "").strip()
    if not raw:
        return {}
    if version < 2:
        raise ModelError(f"{where}metadata key 'state_shapes' needs contract_version '2' (got {version}); "
                         "re-export with contract_version='2' for a stateful model")
    try:
        shapes = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}metadata key 'state_shapes' is not valid JSON ({exc.msg}); "
                         "write a JSON object such as {\"gru\": [1, 64]}") from None
    if not isinstance(shapes, dict):
        raise ModelError(f"{where}metadata key 'state_shapes' must be a JSON object, got "
                         f"{type(shapes).__name__}; write e.g. {{\"gru\": [1, 64]}}")
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ModelError(f"{where}state name {name!r} in 'state_shapes' must be letters, digits and '_'")
        ok = isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)
        if not ok:
            raise ModelError(f"{where}state {name!r} has shape {shape!r}; a state shape is a non-empty list of "
                             "positive integers (fixed: no dynamic axis)")
        if math.prod(shape) > MAX_STATE_ELEMENTS:
            raise ModelError(f"{where}state {name!r} has {math.prod(shape)} elements, more than "
                             f"{MAX_STATE_ELEMENTS}; keep state small (it is copied every call)")
        out[name] = tuple(shape)
    return out


def build_metadata(*, kind: str, cfg: StftConfig, latent_dim: int, name: str, training_data: str,
                   producer: str, added_delay_samples: int = 0, description: str = "",
                   metrics: Mapping[str, Any] | None = None,
                   state_shapes: Mapping[str, Sequence[int]] | None = None,
                   contract_version: int | None = None) -> dict[str, str]:
    """Metadata strings for a model, validated (raises :class:`ModelError` if inconsistent).

    Exporters write each item as a ``metadata_props`` entry of the ONNX model. ``contract_version``
    defaults to 2 when ``state_shapes`` is given, else 1 (a stateless model stays loadable by v1 hosts);
    pass 2 for a stateless model with contract-2 optional inputs.
    """
    version = contract_version if contract_version is not None else (2 if state_shapes else 1)
    props = {
        "contract_version": str(version), "model_kind": kind,
        "sample_rate": str(cfg.sample_rate), "n_fft": str(cfg.n_fft), "hop": str(cfg.hop),
        "window": cfg.window, "feature_type": FEATURE_TYPE, "latent_dim": str(latent_dim),
        "added_delay_samples": str(added_delay_samples), "training_data": training_data,
        "producer": producer, "name": name,
    }
    if description:
        props["description"] = description
    if metrics:
        props["metrics"] = json.dumps(dict(metrics), sort_keys=True)
    if state_shapes:
        props["state_shapes"] = json.dumps({k: [int(d) for d in v] for k, v in state_shapes.items()})
    parse_metadata(props)
    return props


def window_compatible(model_window: str, engine_window: str) -> bool:
    """Whether the engine may run a model trained with ``model_window`` in ``engine_window`` mode.

    Both modes produce the same kind of log-magnitude frames (same n_fft, hop, bins), only with slightly
    different spectral leakage, so a model is usable in either; the loader reports the mismatch.
    """
    return model_window in WINDOW_MODES and engine_window in WINDOW_MODES


def check_config(info: ModelInfo, cfg: StftConfig) -> None:
    """Raise :class:`ModelError` if the engine's STFT ``cfg`` cannot serve the model."""
    where = _label(info.path)
    if info.sample_rate != cfg.sample_rate:
        raise ModelError(f"{where}model expects {info.sample_rate} Hz audio but the engine runs at "
                         f"{cfg.sample_rate} Hz; run the engine at {info.sample_rate} Hz or re-export the "
                         f"model for {cfg.sample_rate} Hz")
    if info.n_fft != cfg.n_fft:
        raise ModelError(f"{where}model expects n_fft {info.n_fft} but the engine uses n_fft {cfg.n_fft}; "
                         f"run the engine with n_fft {info.n_fft} or re-export the model for "
                         f"n_fft {cfg.n_fft}")
    if info.hop != cfg.hop:
        raise ModelError(f"{where}model expects hop {info.hop} but the engine uses hop {cfg.hop}; "
                         f"run the engine with hop {info.hop} or re-export the model for hop {cfg.hop}")
    if not window_compatible(info.window, cfg.window):
        raise ModelError(f"{where}model window {info.window!r} cannot run in engine window {cfg.window!r}")


_DTYPE_FLOAT = "tensor(float)"


def _dims(shape: Sequence[Any]) -> list[int | None]:
    """Static dims as ints, symbolic or unknown dims as None."""
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def expected_io(info: ModelInfo) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(required inputs, optional inputs, required outputs, optional outputs)`` of a model's contract."""
    if info.contract_version < 2:
        return INPUT_NAMES, (), OUTPUT_NAMES, ()
    states = tuple(info.state_shapes)
    return (INPUT_NAMES + tuple(STATE_IN + n for n in states), tuple(OPTIONAL_INPUTS),
            OUTPUT_NAMES + tuple(STATE_OUT + n for n in states), OPTIONAL_OUTPUTS)


def check_io(inputs: Sequence[Any], outputs: Sequence[Any], info: ModelInfo, n_bins: int) -> None:
    """Check graph inputs/outputs (objects with ``.name``, ``.shape``, ``.type``) against the contract.

    Parameters
    ----------
    inputs, outputs : sequences of onnxruntime ``NodeArg``
    info : ModelInfo
        The model's parsed metadata (``latent_dim``, ``contract_version``, ``state_shapes``).
    n_bins : int
        Bins the engine feeds (``cfg.n_bins``).
    """
    where = _label(info.path)
    req_in, opt_in, req_out, opt_out = expected_io(info)
    v2 = info.contract_version >= 2
    for role, args, expected, optional in (("input", inputs, req_in, opt_in), ("output", outputs, req_out, opt_out)):
        names = [a.name for a in args]
        prefix = STATE_IN if role == "input" else STATE_OUT
        stateful = [n for n in names if n in RESERVED_STATE_NAMES or (not v2 and n.startswith(prefix))]
        if stateful:
            raise ModelError(f"{where}model has {role} {stateful[0]!r}: stateful models are not supported "
                             f"by contract v{info.contract_version}; export a frame-wise model or declare "
                             f"contract_version '2' with its state_shapes ({_DOC})")
        undeclared = [n for n in names if v2 and n.startswith(prefix) and n not in expected]
        if undeclared:
            declared = ", ".join(info.state_shapes) or "none"
            raise ModelError(f"{where}{role} {undeclared[0]!r} is a state tensor not declared in the metadata "
                             f"'state_shapes' (declared: {declared}); add it there with its fixed shape")
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected and n not in optional]
        if missing or extra:
            got = ", ".join(repr(n) for n in names) or "none"
            want = ", ".join(repr(n) for n in expected)
            also = f" (optionally also {', '.join(repr(n) for n in optional)})" if optional else ""
            raise ModelError(f"{where}wrong {role} names: got {got}, expected exactly {want}{also}; "
                             f"rename the graph {role}s to the contract names")
    width: dict[str, int] = {INPUT_FEATURES: n_bins, INPUT_AMOUNT: 1, INPUT_NOISE: info.latent_dim,
                             OUTPUT_FEATURES: n_bins, OUTPUT_MU: info.latent_dim, OUTPUT_Z: info.latent_dim}
    for name, (w, _default, _doc) in OPTIONAL_INPUTS.items():
        width[name] = info.latent_dim if w == "latent" else int(w)
    for arg in list(inputs) + list(outputs):
        if arg.type != _DTYPE_FLOAT:
            dtype = arg.type.removeprefix("tensor(").removesuffix(")")
            raise ModelError(f"{where}'{arg.name}' has dtype {dtype}, expected float32; "
                             "cast it to float32 in the graph")
        shape = arg.shape
        state = arg.name.removeprefix(STATE_IN).removeprefix(STATE_OUT) if v2 and arg.name.startswith(
            (STATE_IN, STATE_OUT)) else None
        if state is not None:
            want_shape = list(info.state_shapes[state])
            if shape is None or _dims(shape) != want_shape:
                raise ModelError(f"{where}'{arg.name}' has shape {shape}, expected exactly {want_shape} as declared "
                                 "in 'state_shapes' (state tensors have fixed shapes, no dynamic axis)")
            continue
        if shape is None or len(shape) != 2:
            rank = "unknown" if shape is None else len(shape)
            raise ModelError(f"{where}'{arg.name}' has rank {rank}, expected 2 ([frames, width]); "
                             "export with shape [frames, width] and a dynamic frames axis")
        frames, cols = _dims(shape)
        if frames is not None:
            # The engine batches the frames of one audio block, so a fixed axis (even 1) cannot serve it.
            raise ModelError(f"{where}'{arg.name}' has a fixed frames axis of {frames}; "
                             f"export with a dynamic first axis named '{FRAMES_AXIS}'")
        if cols is not None and cols != width[arg.name]:
            what = ("n_bins" if arg.name in (INPUT_FEATURES, OUTPUT_FEATURES)
                    else "width" if width[arg.name] == 1 else "latent_dim")
            hints = {"n_bins": f"the engine's n_fft {2 * (n_bins - 1)} gives {n_bins} bins",
                     "latent_dim": f"metadata latent_dim is {info.latent_dim}", "width": "it must be 1"}
            hint = hints[what]
            raise ModelError(f"{where}'{arg.name}' has {cols} columns, expected {what} {width[arg.name]} "
                             f"({hint}); re-export with matching shapes")
