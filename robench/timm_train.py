"""Run timm's train.py (or any timm script) with robench's models registered.

timm's pip wheel does not ship train.py (it lives in the pytorch-image-models repository), so this
runs the script given as the first argument as ``__main__``, the way ``python SCRIPT ARGS`` would
(``sys.argv`` and ``sys.path[0]`` set alike), after ``import robench`` has hooked robench's models
into timm's registry (:mod:`robench.timm_hook`)::

    torchrun --nproc_per_node=8 -m robench.timm_train pytorch-image-models/train.py \\
        --model robench_deit_tiny_bsa_patch16_224 --data-dir /data/imagenet ...

also installed as the ``robench-timm-train`` console script.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

USAGE = "usage: python -m robench.timm_train PATH/TO/train.py [train.py arguments...]"


def main(argv: list[str] | None = None) -> None:
    """Run ``argv[0]`` (a script path) as ``__main__`` with ``argv[1:]`` as its arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(USAGE + "\n")
        raise SystemExit(0 if argv else 2)
    script = Path(argv[0])
    if not script.is_file():
        sys.stderr.write(f"robench-timm-train: error: {script} is not a file; give timm's train.py (from the "
                         "pytorch-image-models repository) as the first argument\n")
        raise SystemExit(2)
    import robench  # noqa: F401  (installs the hook: robench_* models register when the script imports timm)

    sys.argv = [str(script), *argv[1:]]
    sys.path.insert(0, str(script.resolve().parent))  # as `python SCRIPT` puts the script's folder first
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
