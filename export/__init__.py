"""Export of trained models to ONNX files that satisfy model contract v1 (docs/architecture.md)."""
