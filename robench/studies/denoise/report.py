"""The study's files: ``results.csv`` (one :class:`DenoiseRow` per line) and ``summary.md`` (mean ± sd
over seeds), the summary always computed from the rows as read back from the CSV."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

from robench.fileio import atomic_write_text
from robench.studies.denoise.study import METHODS, DenoiseRow

COLUMNS = tuple(f.name for f in fields(DenoiseRow))


def rows_csv(rows: list[DenoiseRow]) -> str:
    """The CSV text of ``rows`` (mse to 7 significant digits, psnr to 4 decimals)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r.signal, f"{r.sigma:g}", r.method, r.seed, r.n_test, f"{r.mse:.7g}", f"{r.psnr:.4f}", r.params])
    return buf.getvalue()


def read_rows(path: Path) -> list[DenoiseRow]:
    """The rows of a ``results.csv``."""
    with open(path, newline="") as f:
        return [DenoiseRow(d["signal"], float(d["sigma"]), d["method"], int(d["seed"]), int(d["n_test"]),
                           float(d["mse"]), float(d["psnr"]), d["params"]) for d in csv.DictReader(f)]


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {sd:.2f}"


def summary_md(rows: list[DenoiseRow]) -> str:
    """Markdown: per signal kind, PSNR (dB, mean ± sd over seeds) of every method at every noise
    level, and on how many seeds BSA's layer beats SA's (identity and learned projections)."""
    psnr: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        psnr[(r.signal, r.sigma, r.method)][r.seed] = r.psnr
    out = ["# Kernel ablation on synthetic denoising", "",
           "PSNR in dB (10 log10(1 / MSE), signals in [0, 1]) on the held-out test signals, mean ± sd over "
           "seeds; higher is better. `BSA>SA` counts the seeds where BSA's layer has the higher PSNR.", ""]
    for kind in sorted({r.signal for r in rows}):
        sigmas = sorted({r.sigma for r in rows if r.signal == kind})
        methods = [m for m in METHODS if any((kind, s, m) in psnr for s in sigmas)]
        seeds = sorted({r.seed for r in rows if r.signal == kind})
        out += [f"## {kind} signals ({len(seeds)} seeds: {', '.join(map(str, seeds))})", "",
                "| sigma | " + " | ".join(methods) + " | BSA>SA identity | BSA>SA learned |",
                "|---" * (len(methods) + 3) + "|"]
        for s in sigmas:
            cells = [_ms(list(psnr[(kind, s, m)].values())) for m in methods]
            wins = []
            for how in ("identity", "learned"):
                a, b = psnr.get((kind, s, f"bsa-{how}"), {}), psnr.get((kind, s, f"sa-{how}"), {})
                common = sorted(set(a) & set(b))
                wins.append(f"{sum(a[k] > b[k] for k in common)}/{len(common)}")
            out.append(f"| {s:g} | " + " | ".join(cells + wins) + " |")
        out.append("")
    return "\n".join(out)


def write(rows: list[DenoiseRow], out: Path) -> None:
    """``out/results.csv`` and ``out/summary.md`` (the summary of the CSV as written), each written to a
    temp file and renamed, so an interrupted run leaves no half-written file."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", rows_csv(rows))
    atomic_write_text(out / "summary.md", summary_md(read_rows(out / "results.csv")))
