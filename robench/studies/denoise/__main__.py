"""``python -m robench.studies.denoise --out DIR [options]``: run the study, write its two files."""

from __future__ import annotations

import argparse
from pathlib import Path

from robench.argspec import cli_fields
from robench.studies.denoise.report import write
from robench.errors import RobenchError, exit_on_bad_input
from robench.studies.denoise.study import DenoiseArgs, check, run


def parse(argv: list[str] | None = None) -> DenoiseArgs:
    """The options declared by :class:`DenoiseArgs`, parsed from ``argv``."""
    p = argparse.ArgumentParser(prog="python -m robench.studies.denoise", description=__doc__)
    for f in cli_fields(DenoiseArgs):
        meta = f.metadata["cli"]
        kind = {"int": int, "float": float}.get(str(f.type), str)
        p.add_argument(*meta["flags"], dest=f.name, type=kind, default=f.default, required=meta["required"],
                       help=meta["help"])
    return DenoiseArgs(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    """Run the study with the parsed options and write ``results.csv`` and ``summary.md``.

    Bad options: one line on stderr and exit 2, before any work (as the robench CLI does).
    """
    args = parse(argv)
    try:
        check(args)
    except RobenchError as e:
        exit_on_bad_input(e)
    write(run(args), Path(args.out))


if __name__ == "__main__":
    main()
