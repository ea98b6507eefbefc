"""Image threats (one per module), each a thin, explicit wrapper around a torchattacks attack."""

from robench.threats.image import apgd, autoattack, corruption, fgsm, pgd, pgd_l2, spsa, square  # noqa: F401
