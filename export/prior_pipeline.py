"""``python -m export.prior_pipeline``: train the envelope VAE and the latent prior (:mod:`models.train_prior`),
then export them as one contract-2 ONNX graph (:func:`export.onnx_export.export_prior`)."""

from __future__ import annotations

import sys
from pathlib import Path

from export.onnx_export import ExportError, export_prior
from models import train_prior


def export_trained(effect, out: str | Path, **card) -> Path | None:
    """Export with the card; ``None`` (after a one-line error) when a check fails."""
    try:
        return export_prior(effect, out, **card)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    return train_prior.main(argv, exporter=export_trained)


if __name__ == "__main__":
    raise SystemExit(main())
