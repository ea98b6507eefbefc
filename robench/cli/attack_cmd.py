"""``robench attack``: one threat on one checkpoint, in detail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from robench.cli.app import app, err_console, out_console
from robench.cli.evaluate_cmd import check_export_paths, warn, write_exports
from robench.cli.options import CsvExport, JsonExport, MarkdownExport, run_options
from robench.cli.progress import RunDisplay


def highlight_changes(original: str, perturbed: str):
    """Rich texts of both sides with the changed words marked (red before, green after)."""
    import difflib

    from rich.text import Text

    a, b = original.split(), perturbed.split()
    left, right = Text(), Text()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        same = tag == "equal"
        left.append(" ".join(a[i1:i2]) + (" " if i2 > i1 else ""), style=None if same else "bold red")
        right.append(" ".join(b[j1:j2]) + (" " if j2 > j1 else ""), style=None if same else "bold green")
    return left, right


@app.command()
@run_options
def attack(
    model: str = typer.Argument(..., help="Zoo name or checkpoint path."),
    threat: str = typer.Option(..., "--threat", help="Threat spec, e.g. pgd:eps=8/255,steps=20 (see `robench threats`)."),
    save_adv: Optional[Path] = typer.Option(None, "--save-adv", help="Write adversarial images, labels, predictions (safetensors)."),
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Attack one model with one threat: accuracy, success rate, perturbation, queries, time, examples."""
    from rich.table import Table

    from robench.engine.attack import AttackArgs, attack as run_attack

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    check_export_paths({**exports, "save-adv": save_adv}, run["out"])
    from robench.engine.distributed import is_main_process

    note = (lambda m: sys.stderr.write(f"robench: {m}\n")) if is_main_process() else None
    show = not quiet and not any(str(p) == "-" for p in exports.values() if p is not None) and is_main_process()
    with RunDisplay(show, err_console) as display:
        rep = run_attack(AttackArgs(model=model, threat=threat, save_adv=save_adv, **run), on_note=note,
                         on_progress=display.update)
    if not is_main_process():  # under torchrun only rank 0 renders and writes
        return
    r = rep.row
    for note in r.flag_notes.split("; ") if r.flags else []:
        warn(f"{r.model}: {note}")
    if show:
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
        out_console.print(t)
        if rep.examples and rep.originals:
            for e in rep.examples[:3]:
                before, after = highlight_changes(rep.originals[e.id], e.adv_text or "")
                out_console.print(f"[bold]example {e.id}[/] {rep.labels[e.label]} -> predicted {rep.labels[e.attacked_pred]} "
                                  f"({100 * e.perturbation:.0f}% of words changed, {e.queries:.0f} queries)", highlight=False)
                out_console.print("  - ", before, sep="", highlight=False)
                out_console.print("  + ", after, sep="", highlight=False)
        elif rep.examples:
            ex = Table(title="first broken examples")
            for col in ("id", "label", "clean pred", "attacked pred", "Linf", "L2", "queries"):
                ex.add_column(col, justify="right")
            for e in rep.examples:
                ex.add_row(str(e.id), rep.labels[e.label], rep.labels[e.clean_pred], rep.labels[e.attacked_pred],
                           f"{e.linf:.4g}", f"{e.l2:.4g}", f"{e.queries:.4g}")
            out_console.print(ex)
        if save_adv is not None:
            err_console.print(f"wrote adversarial set -> {save_adv} (re-evaluate with --dataset {save_adv})")
    write_exports([rep.clean_row, r], exports)
