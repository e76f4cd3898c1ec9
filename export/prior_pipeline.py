"""``python -m export.prior_pipeline``: train the envelope VAE and the latent prior (:mod:`models.train_prior`),
then export them as one contract-2 ONNX graph (:func:`export.onnx_export.export_prior`)."""

from __future__ import annotations

import sys
from pathlib import Path

from export.onnx_export import export_or_report, export_prior
from models import train_prior


def export_trained(effect, out: str | Path, **card) -> Path | None:
    """Export with the card; ``None`` (after a one-line error) when a check fails."""
    return export_or_report(export_prior, effect, out, **card)


def bench_steps(checkpoint: str | Path, steps=(1, 2, 3), out_dir: str | Path = "/tmp") -> dict[int, dict]:
    """Cost per sampler step count K: the same trained weights exported with each K, timed in the engine
    (block 128) and alone (one frame per call)."""
    import tempfile

    from models.fd import engine_block_times
    from models.prior import PriorEffect
    from realtime.engine.model import EffectModel, measure_inference

    vae, prior, ckpt = train_prior.load(checkpoint)
    res = {}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for k in steps:
            path = export_prior(PriorEffect(vae, prior, k), Path(tmp) / f"k{k}.onnx", training_data="bench")
            call = measure_inference(EffectModel(path), (1,), repeats=1000)[1]
            res[k] = {"model_call_median_us": round(call["median_us"], 1),
                      "model_call_p99_us": round(call["p99_us"], 1),
                      **{f"engine_{n}": v for n, v in engine_block_times(path).items()}}
            print(f"K={k}: {res[k]}", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    """Train then export (the arguments of :mod:`models.train_prior`), or ``--bench-steps CKPT [K,K,...]``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bench-steps"]:
        ks = tuple(int(k) for k in (argv[2] if len(argv) > 2 else "1,2,3").split(","))
        bench_steps(argv[1], ks)
        return 0
    return train_prior.main(argv, exporter=export_trained)


if __name__ == "__main__":
    raise SystemExit(main())
