"""Rich tables of the commands other than the leaderboard (:mod:`robench.report.tables`): one attack
in detail, a curve with its AUC, the diagnostics, the seed aggregate, ``doctor`` and the zoo.

Each function returns renderables; the command prints them on its console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from rich.table import Table
from rich.text import Text

from robench.report.tables import short_threat
from robench.models.config import BASELINE_VARIANTS

if TYPE_CHECKING:
    from robench.engine.attack import AttackReport
    from robench.engine.curve import CurveResult


def highlight_changes(original: str, perturbed: str) -> tuple[Text, Text]:
    """Rich texts of both sides with the changed words marked (red before, green after)."""
    import difflib

    a, b = original.split(), perturbed.split()
    left, right = Text(), Text()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        same = tag == "equal"
        left.append(" ".join(a[i1:i2]) + (" " if i2 > i1 else ""), style=None if same else "bold red")
        right.append(" ".join(b[j1:j2]) + (" " if j2 > j1 else ""), style=None if same else "bold green")
    return left, right


def attack_table(rep: "AttackReport") -> Table:
    """One threat on one model: accuracies with the Wilson interval, success, perturbation, queries, flags."""
    r = rep.row
    t = Table(title=f"{r.model} under {r.threat}", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("dataset", f"{r.dataset}/{r.split}, n={r.n}, seed {r.seed}, {r.device}")
    t.add_row("clean accuracy", f"{100 * r.clean_acc:.2f}%")
    t.add_row("attacked accuracy", f"{100 * r.attacked_acc:.2f}% [{100 * r.attacked_ci_low:.1f}, {100 * r.attacked_ci_high:.1f}] (95% Wilson)")
    t.add_row("attack success rate", f"{100 * r.attack_success_rate:.2f}% of {round(r.clean_acc * r.n)} attacked")
    t.add_row(f"mean perturbation ({r.perturbation_unit}, broken)", f"{r.mean_perturbation:.4g}")
    if r.perturbation_unit == "words":  # text: no pixel norms; the largest fraction of words changed
        t.add_row("max words changed (attacked)", f"{100 * rep.max_perturbation:.0f}% of words")
    else:
        t.add_row("max Linf / max L2 (attacked)", f"{rep.max_linf:.4g} / {rep.max_l2:.4g}")
    t.add_row("mean queries (attacked)", f"{r.mean_queries:.4g}")
    t.add_row("time", f"{r.seconds:.2f}s ({rep.examples_per_second:.1f} attacked examples/s)")
    t.add_row("sanity flags", "\n".join(f"⚠ {note}" for note in r.flag_notes.split("; ")) if r.flags else "none")
    return t


def broken_examples_table(rep: "AttackReport") -> Table:
    """The first broken image examples: labels, predictions, norms, queries."""
    ex = Table(title="first broken examples")
    for col in ("id", "label", "clean pred", "attacked pred", "Linf", "L2", "queries"):
        ex.add_column(col, justify="right")
    for e in rep.examples:
        ex.add_row(str(e.id), rep.labels[e.label], rep.labels[e.clean_pred], rep.labels[e.attacked_pred],
                   f"{e.linf:.4g}", f"{e.l2:.4g}", f"{e.queries:.4g}")
    return ex


def curve_table(result: "CurveResult", threat: str) -> Table:
    """Accuracy (± the Wilson half-width) per model and swept value, and the AUC."""
    from robench.threats.spec import format_number

    table = Table(title=f"robench curve: {threat} over {result.key}",
                  caption="accuracy in %, higher is better; ± is the 95% Wilson half-width; AUC = trapezoid / range")
    table.add_column("model", no_wrap=True)
    for x in result.xs:
        table.add_column(f"{result.key}={format_number(x)}", justify="right")
    table.add_column("AUC", justify="right")
    for model, auc in result.auc.items():
        cells = [f"{100 * r.attacked_acc:.1f} ±{100 * (r.attacked_ci_high - r.attacked_ci_low) / 2:.1f}" for r in result.points(model)]
        table.add_row(model, *cells, f"{100 * auc:.1f}")
    return table


def _cell(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if value == value and abs(value) != float("inf") else str(value)


def diagnostics_tables(result: Any, seed: int, delta: float, draws: int) -> list[tuple[str, Table, str]]:
    """(title, table, caption) per diagnostic of a ``robench diagnose`` result: models x layers (or N)."""
    from robench.studies.diagnose.run import SENSITIVITY, SNR, UNIFORMITY

    n = "/".join(str(v) for v in dict.fromkeys(result.examples.values()))
    noises = "; ".join(dict.fromkeys(result.noise.values()))
    specs = [
        (UNIFORMITY, "token uniformity: mean pairwise cosine of all tokens (CLS included) per layer; 0 = embedding",
         f"n={n} examples, seed {seed}; higher = more uniform (1 = all tokens parallel)", "L", 3),
        (SNR, "SNR per layer (dB): 10 log10(sum ||H(x)||^2 / sum ||H(x~) - H(x)||^2)",
         f"noise: {noises}; n={n}, seed {seed}; higher is better", "L", 1),
        (SENSITIVITY, "first attention layer: relative sensitivity (||dA||/||A||) / (||dx||/||x||) vs N",
         f"random unit-variance tokens, delta={delta:g}, {draws} draws, seed {seed}", "N=", 3),
    ]
    out = []
    for diag, title, caption, prefix, digits in specs:
        keys = list(dict.fromkeys(k for m in result.models for k, _ in result.series(m, diag)))
        table = Table()  # title and caption as plain lines: a narrow table would wrap them
        table.add_column("model", no_wrap=True)
        for k in keys:
            table.add_column(f"{prefix}{k}", justify="right")
        for m in result.models:
            cells = dict(result.series(m, diag))
            table.add_row(m, *(_cell(cells[k], digits) if k in cells else "-" for k in keys))
        out.append((title, table, caption))
    return out


def seed_summary_table(summaries: Sequence[Any], baseline: str | None) -> Table:
    """``robench aggregate``: mean ± sd over seeds per model group and threat, paired tests."""
    table = Table(title="mean ± sd over seeds (accuracy %, or perplexity: lower is better)")
    for col in ("model", "n", "threat", "seeds", "mean ± sd", "Δ vs " + (baseline or "-"), "better", "t-test p",
                "paired p"):
        table.add_column(col)
    for s in summaries:
        k = 1.0 if s.metric == "perplexity" else 100.0
        table.add_row(s.group, str(s.n), short_threat(s.threat), s.seeds, f"{k * s.mean:.1f} ± {k * s.sd:.1f}",
                      "" if s.delta_mean is None else f"{k * s.delta_mean:+.1f} ± {k * (s.delta_sd or 0):.1f}",
                      "" if s.seeds_better is None else str(s.seeds_better),
                      "" if s.ttest_p is None else f"{s.ttest_p:.3g}", s.paired_p)
    return table


def doctor_table(checks: Sequence[Any]) -> Table:
    """``robench doctor``: each check, its status and how to fix it."""
    table = Table(title="robench doctor", caption="exit code 3 when a required check is missing")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail / how to fix")
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else ("missing" if c.required else "missing (optional)"), c.detail)
    return table


def zoo_tables(entries: Sequence[dict], families: Sequence[str], variants: Sequence[str], zoo: Any) -> list[Table]:
    """``robench models``: the zoo (one row per checkpoint card) and the registered architectures."""
    table = Table(title=f"robench zoo ({zoo})", caption="clean accuracy on the card's test split, measured at training time")
    for col, just in [("name", "left"), ("task", "left"), ("variant", "left"), ("params", "right"),
                      ("dataset", "left"), ("clean %", "right"), ("n", "right")]:
        table.add_column(col, justify=just)
    for e in entries:
        acc = "-" if e["clean_acc"] is None else f"{100 * e['clean_acc']:.2f}"
        table.add_row(e["name"], e["task"], e["variant"], f"{e['params']:,}", e["dataset"], acc, str(e["n"] or "-"))
    arch = Table(title="registered architectures")
    arch.add_column("family")
    arch.add_column("variants")
    arch.add_column("timm names")
    for fam in families:
        timm_names = (", ".join(f"robench_vit_{v.replace('-', '_')}" for v in variants if v not in BASELINE_VARIANTS)
                      + "; robench_deit_{tiny,small}_<variant>_{patch16_224,patch4_32}") if fam == "vit" else "-"
        arch.add_row(fam, ", ".join(variants), timm_names)
    return [table, arch]


def arch_options_table(options: Sequence[dict]) -> Table:
    """``robench models``: the architecture options ``robench train --arch-arg`` sets."""

    def show(v: Any) -> str:
        return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    table = Table(title="architecture options (robench train --arch-arg KEY=VALUE)")
    for col in ("option", "default", "values", "applies to", "meaning"):
        table.add_column(col)
    for o in options:
        values = ", ".join(show(c) for c in o["choices"]) if o["choices"] else "number"
        table.add_row(o["name"], show(o["default"]), values, o["applies_to"], o["help"])
    return table
