"""Threats: one registry (``registry.py``), one interface (``base.py``), image and text threats.

Importing the package imports every built-in threat module, whose ``@register_threat`` decorators
fill the registry (timm's pattern): a ``robench.threats.*`` import sees every threat. The modules
import torch only where they compute, so listing threats stays fast.
"""

from robench.threats import image, text  # noqa: F401
