"""The sanity battery: signs that a robustness number cannot be trusted.

Robust-looking models that mask gradients (a zero backward, probabilities instead of logits, input
quantisation, randomness at inference) fooled many published evaluations (Athalye et al. 2018;
Carlini et al. 2019, "On evaluating adversarial robustness"). robench runs these checks on every
evaluation and attaches the flags to each (model, threat) row: the ``flags`` column holds the
codes, ``flag_notes`` one line per flag with the measured figure; the leaderboard shows both.

* model checks look at the model on a small probe batch of the evaluated examples;
* row checks compare the rows of one run (eps sweeps, PGD vs FGSM, query vs gradient attacks),
  with an exact McNemar test on the paired outcomes so that sampling noise is not flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from robench.results.stats import mcnemar_exact

if TYPE_CHECKING:
    from robench.data.base import Dataset
    from robench.data.loader import Feed
    from robench.models.loading import LoadedModel
    from robench.results.records import Record
    from robench.results.schema import ResultRow

FLAGS: dict[str, str] = {
    "nondeterministic": "the same inputs gave different logits twice: accuracies are not reproducible (dropout or noise at inference?)",
    "probabilities": "outputs look like probabilities, not logits: cross-entropy attacks get vanishing gradients",
    "zero-gradients": "most input gradients are zero or NaN: gradient attacks cannot move (gradient masking)",
    "unbounded-pgd": "PGD with eps=1 (the whole pixel box) does not drive accuracy near zero: masked gradients or a broken attack",
    "eps-increase": "attacked accuracy increases with eps: the attack is not finding what a smaller budget found",
    "pgd-weaker-than-fgsm": "PGD leaves more examples correct than FGSM at the same eps: the iterative attack is failing",
    "query-beats-gradient": "a query-based attack breaks clearly more than the gradient attack at the same eps: gradients may be masked",
}

PROBE_SIZE = 64  # examples the model checks run on
ZERO_GRAD_SHARE = 0.5  # flag when more than this share of probe examples has a zero/NaN gradient
UNBOUNDED_LEFT = 0.1  # flag when unbounded PGD leaves more than this share correct
UNBOUNDED_PGD = "pgd:eps=1,alpha=0.1,steps=20,random_start=0"  # no random start: only gradients move it
SIGNIFICANCE = 0.05  # two-sided exact McNemar level for the row checks
QUERY_MARGIN = 0.05  # accuracy points a query attack must win by


@dataclass(frozen=True)
class Flag:
    code: str
    note: str  # one line with the figure that raised it

    def __str__(self) -> str:
        return f"{self.code}: {self.note}"


def _looks_like_probabilities(logits) -> bool:
    import torch

    lo, hi = float(logits.min()), float(logits.max())
    sums = logits.double().sum(-1)
    return lo >= -1e-6 and hi <= 1 + 1e-6 and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3))


def model_flags(model: LoadedModel, ds: Dataset, seed: int, feed: Feed | None = None) -> list[Flag]:
    """Checks on the model itself, on the first ``PROBE_SIZE`` evaluated examples (deterministic;
    ``feed`` decodes file-backed images, see :mod:`robench.data.loader`)."""
    import torch
    import torch.nn.functional as F

    from robench.data.base import IMAGE
    from robench.data.loader import Feed
    from robench.data.preprocess import from_contract

    probe = ds.subset(range(min(PROBE_SIZE, len(ds))))
    module, device = model.module, model.device
    if ds.task == IMAGE:
        x = (feed or Feed(from_contract(model.card.preprocessing), device)).tensor(probe)
    else:
        x = module.encode(probe.inputs)
    x, y = x.to(device), probe.targets.to(device)
    flags: list[Flag] = []
    with torch.inference_mode():
        a, b = module(x).float(), module(x).float()
    diff = float((a - b).abs().max())
    if not diff <= 1e-4 * (1 + float(a.abs().max())):  # also catches NaN
        flags.append(Flag("nondeterministic", f"two forward passes on the same {len(y)} inputs differ by up to {diff:.3g}"))
    if _looks_like_probabilities(a):
        flags.append(Flag("probabilities", f"every output row is in [0, 1] and sums to 1 ({len(y)} probe examples)"))
    if not x.is_floating_point():
        return flags  # token ids: no input gradients to check
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = module(xg)
        grad = None
        if logits.requires_grad:
            (grad,) = torch.autograd.grad(F.cross_entropy(logits.float(), y, reduction="sum"), xg, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    flat = grad.flatten(1)
    dead = ~torch.isfinite(flat).all(1) | (flat.abs().amax(1) == 0)
    share = float(dead.float().mean())
    if share > ZERO_GRAD_SHARE:
        flags.append(Flag("zero-gradients", f"{share:.0%} of {len(y)} probe images have an all-zero or NaN input gradient"))
    correct = a.argmax(-1) == y
    if int(correct.sum()):
        from robench.threats.base import ThreatBatch
        from robench.threats.registry import build_threat

        out = build_threat(UNBOUNDED_PGD)(module, ThreatBatch(x[correct], y[correct], len(model.labels), seed))
        left = float((out.adv_pred == y[correct]).float().mean())
        if left > UNBOUNDED_LEFT:
            flags.append(Flag("unbounded-pgd", f"{UNBOUNDED_PGD} leaves {left:.0%} of {int(correct.sum())} correctly classified probe images correct"))
    return flags


def _paired(a: Sequence[Record], b: Sequence[Record]) -> tuple[int, int, float]:
    """(robust only in a, robust only in b, exact McNemar p)."""
    only_a = sum(x.robust and not z.robust for x, z in zip(a, b))
    only_b = sum(z.robust and not x.robust for x, z in zip(a, b))
    return only_a, only_b, mcnemar_exact(only_a, only_b)


def _same_attack_key(t) -> dict:
    """The parameters besides eps; a step size that follows eps by its rule (pgd's alpha = eps/4) is
    part of "the same attack at another eps", so it is left out too."""
    derived = {p.name for p in t.params if p.follows == "eps" and t.values[p.name] == p.derive(t.values)}
    return {k: v for k, v in t.values.items() if k != "eps" and k not in derived}


Key = tuple[str, str, str, str]  # (model, dataset, split, threat spec)


def row_flags(rows: Sequence[ResultRow], results: dict[Key, list[Record]]) -> dict[Key, list[Flag]]:
    """Cross-row checks within each model's rows on one dataset, keyed by (model, dataset, split, spec)."""
    from robench.errors import RobenchError
    from robench.threats.registry import build_threat

    found: dict[Key, list[Flag]] = {}
    by_model: dict[tuple[str, str, str], list] = {}
    for r in rows:
        try:
            t = build_threat(r.threat)
        except RobenchError:
            continue
        if "eps" in t.values and len(t.expand()) == 1 and (r.model, r.dataset, r.split, r.threat) in results:
            by_model.setdefault((r.model, r.dataset, r.split), []).append((t, r))

    def add(key: tuple[tuple[str, str, str], str], flag: Flag) -> None:
        full = (*key[0], key[1])
        if all(f.code != flag.code for f in found.get(full, [])):
            found.setdefault(full, []).append(flag)

    for model, items in by_model.items():
        recs = {t.spec: results[(*model, t.spec)] for t, _ in items}
        for t1, r1 in items:
            for t2, r2 in items:
                if t1 is t2 or len(recs[t1.spec]) != len(recs[t2.spec]):
                    continue
                e1, e2 = t1.values["eps"], t2.values["eps"]
                rest1, rest2 = _same_attack_key(t1), _same_attack_key(t2)
                better, worse, p = _paired(recs[t2.spec], recs[t1.spec])  # robust only under t2 / only under t1
                significant = better > worse and p < SIGNIFICANCE
                if t1.name == t2.name and rest1 == rest2 and e1 < e2 and significant:
                    add((model, t2.spec), Flag("eps-increase", f"{t2.short}: {r2.attacked_acc:.1%} vs {r1.attacked_acc:.1%} at eps={e1:.4g} (McNemar p={p:.2g})"))
                same_budget = e1 == e2 and t1.perturbation_unit == t2.perturbation_unit and t1.values.get("target", "none") == t2.values.get("target", "none") == "none"
                if not same_budget:
                    continue
                if t1.name == "fgsm" and t2.name == "pgd" and significant:
                    add((model, t2.spec), Flag("pgd-weaker-than-fgsm", f"{t2.short}: {r2.attacked_acc:.1%} vs {t1.short}: {r1.attacked_acc:.1%} (McNemar p={p:.2g})"))
                if (t1.access == "query" and t2.access == "gradient" and significant
                        and r2.attacked_acc - r1.attacked_acc > QUERY_MARGIN):
                    add((model, t2.spec), Flag("query-beats-gradient", f"{t1.short}: {r1.attacked_acc:.1%} vs {t2.short}: {r2.attacked_acc:.1%} (McNemar p={p:.2g})"))
    return found


def attach(rows: Sequence[ResultRow], per_model: dict[str, list[Flag]], per_row: dict[Key, list[Flag]]) -> None:
    """Write the flags of each row into its ``flags`` / ``flag_notes`` columns."""
    for r in rows:
        flags = per_model.get(r.model, []) + per_row.get((r.model, r.dataset, r.split, r.threat), [])
        r.flags = ";".join(f.code for f in flags)
        r.flag_notes = "; ".join(str(f) for f in flags)


def flag_rows(rows: Sequence[ResultRow], results: dict[Key, list[Record]], per_model: dict[str, list[Flag]],
              compare: bool = True, on_warning: Callable[[str], None] | None = None) -> None:
    """Attach the model checks and the row checks to a run's rows (``compare=False``: no row checks,
    for a shard's rows, which are compared after ``robench merge``); each flag heard once by ``on_warning``."""
    per_row = row_flags(rows, results) if compare else {}
    attach(rows, per_model, per_row)
    if on_warning:
        for model, flags in per_model.items():
            for f in flags:
                on_warning(f"{model}: {f}")
        for (model, _dataset, _split, _spec), flags in per_row.items():
            for f in flags:
                on_warning(f"{model}: {f}")
