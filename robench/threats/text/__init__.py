"""Text threats: textattack recipes, robench's batched pwws-fast, and contamination."""

from robench.threats.text import contamination, pwws_fast, textattack_recipes  # noqa: F401
