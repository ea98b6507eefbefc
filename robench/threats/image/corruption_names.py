"""The corruption names and robench's documented approximations, without importing torch.

The corruption threat's parameters (``robench threats``) need these, not the tensor code in
:mod:`robench.threats.image.corruptions`, which imports them from here.
"""

from __future__ import annotations

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
APPROXIMATE = {
    "glass_blur": "local scramble by random offsets (one gather) instead of sequential pixel swaps; small images at >= 32 px",
    "pixelate": "below 32 px: square blocks of 2, 2, 2, 3, 4 pixels",
    "elastic_transform": "affine jitter in ascending order so the change grows with severity",
    "motion_blur": "one-sided Gaussian line kernel with bilinear splatting (ImageMagick's definition)",
    "snow": "snow layer motion-blurred with robench's line kernel",
    "frost": "seeded procedural ice texture instead of ImageNet-C's frost photographs; severities 3-4 about equal",
}
