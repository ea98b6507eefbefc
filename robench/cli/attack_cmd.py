"""``robench attack``: one threat on one checkpoint, in detail."""

from __future__ import annotations

import sys

import typer

from robench.cli.app import app, err_console, out_console, warn
from robench.cli.options import CsvExport, JsonExport, MarkdownExport, args_options
from robench.cli.progress import RunDisplay
from robench.engine.args import AttackArgs
from robench.report.exports import check_export_paths, write_exports


@app.command()
@args_options(AttackArgs)
def attack(
    csv: CsvExport = None,
    json_: JsonExport = None,
    markdown: MarkdownExport = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table, no progress."),
    run: dict = None,
) -> None:
    """Attack one model with one threat: accuracy, success rate, perturbation, queries, time, examples."""
    from robench.engine.attack import attack as run_attack
    from robench.report.command_tables import attack_table, broken_examples_table, highlight_changes

    exports = {"csv": csv, "json": json_, "markdown": markdown}
    save_adv = run.get("save_adv")
    check_export_paths({**exports, "save-adv": save_adv}, run.get("out"))
    from robench.engine.distributed import is_main_process

    note = (lambda m: sys.stderr.write(f"robench: {m}\n")) if is_main_process() else None
    show = not quiet and not any(str(p) == "-" for p in exports.values() if p is not None) and is_main_process()
    with RunDisplay(show, err_console) as display:
        rep = run_attack(AttackArgs(**run), on_note=note, on_progress=display.update)
    if not is_main_process():  # under torchrun only rank 0 renders and writes
        return
    r = rep.row
    for note in r.flag_notes.split("; ") if r.flags else []:
        warn(f"{r.model}: {note}")
    if show:
        out_console.print(attack_table(rep))
        if rep.examples and rep.originals:
            for e in rep.examples[:3]:
                before, after = highlight_changes(rep.originals[e.id], e.adv_text or "")
                out_console.print(f"[bold]example {e.id}[/] {rep.labels[e.label]} -> predicted {rep.labels[e.attacked_pred]} "
                                  f"({100 * e.perturbation:.0f}% of words changed, {e.queries:.0f} queries)", highlight=False)
                out_console.print("  - ", before, sep="", highlight=False)
                out_console.print("  + ", after, sep="", highlight=False)
        elif rep.examples:
            out_console.print(broken_examples_table(rep))
        if save_adv is not None:
            err_console.print(f"wrote adversarial set -> {save_adv} (re-evaluate with --dataset {save_adv})")
    write_exports([rep.clean_row, r], exports, err_console)
