"""Checkpoints: ``NAME.safetensors`` weights + ``NAME.json`` card, loaded without unpickling code."""

from robench.checkpoint.card import Card
from robench.checkpoint.io import load_checkpoint, save_checkpoint

__all__ = ["Card", "load_checkpoint", "save_checkpoint"]
