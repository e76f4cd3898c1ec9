"""``audio-diffusion train``: train with :mod:`models.train`, then export to ONNX with :mod:`export.onnx_export`.

The pipeline stands above both: models never import export, so training and export stay apart (as in RAVE).
"""

from __future__ import annotations

import sys
from pathlib import Path

from export.onnx_export import OPSET, export_onnx, export_or_report
from models import train


def export_trained(model, out: str | Path, **card) -> Path | None:
    """Export a trained model with its card; ``None`` (after a one-line error) when the export fails."""
    path = export_or_report(export_onnx, model, out, **card)
    if path is not None:
        print(f"exported opset {OPSET}: {path}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    """Train then export; the same arguments as :func:`models.train.main`."""
    return train.main(argv, exporter=export_trained)


if __name__ == "__main__":
    raise SystemExit(main())
