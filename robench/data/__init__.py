"""Datasets: sources, loaders, preprocessing, labels; one registry (``registry.py``).

Importing the package imports the built-in datasets, whose ``@register_dataset`` decorators fill the
registry (timm's pattern).
"""

from robench.data import digits, wordnet_topics  # noqa: F401
