"""The learned part of Audio Diffusion Host: corpus, frame-wise VAE, training and quality metrics.

Everything here may import torch; :mod:`realtime` never imports this package.
"""
