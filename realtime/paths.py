"""Where the shipped models live, and how short model names resolve."""

from __future__ import annotations

from pathlib import Path

PRETRAINED = Path(__file__).resolve().parent.parent / "models" / "pretrained"
SHIPPED = ("default", "denoise")


def resolve_model(name: str | Path) -> Path:
    """``"default"``/``"denoise"`` (or any stem in ``models/pretrained``) or a path to an ``.onnx`` file."""
    p = Path(name)
    if p.suffix != ".onnx" and p.parent == Path("."):
        shipped = PRETRAINED / f"{p.name}.onnx"
        if shipped.exists():
            return shipped
    return p


def shipped_models() -> list[Path]:
    """The ``.onnx`` files shipped in ``models/pretrained``."""
    return sorted(PRETRAINED.glob("*.onnx"))
