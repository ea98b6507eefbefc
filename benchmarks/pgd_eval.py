"""PGD evaluation: robench's attack engine vs the naive torchattacks loop, in one process.

naive    torchattacks.PGD(model, eps, alpha, steps, random_start=True) over every example of the
         split, batch by batch; robust accuracy = final-iterate predictions == labels.
robench  what ``robench evaluate --threat pgd:...`` runs for one threat (process start-up excluded):
         the clean pass (jobs.clean_records), then runner.attack_records on the clean records
         (only clean-correct examples are attacked; a point is broken if any iterate broke it;
         broken examples leave the batch).

Both are timed interleaved (``--repeats`` each, after one untimed warm-up of each); medians are
compared. The engine without early exit (same code, ``early_exit=False``) is timed too, to show
what early exit itself saves. Then, untimed: model rows each computed (a counting wrapper), and the
examples naive broke but robench did not. The two loops draw different random starts (naive draws
for every example in its batches, robench per slice of the clean-correct examples), so that count
and the accuracy difference carry random-start noise: they are also shown for ``--seeds`` seeds,
and for "naive, same starts": torchattacks.PGD on exactly the engine's slices under the engine's
slice seeds, where the trajectories coincide and the count must be 0.

Usage: .venv/bin/python benchmarks/pgd_eval.py [--model digits-vit-sa] [--eps 0.1] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from robench.data.registry import load_dataset  # noqa: E402
from robench.device import amp_name, resolve_device  # noqa: E402
from robench.engine.jobs import clean_records  # noqa: E402
from robench.models.loading import LoadedModel, load_model  # noqa: E402
from robench.results.records import Record, summarize  # noqa: E402
from robench.engine.runner import attack_records
from robench.seeds import batch_seed  # noqa: E402
from robench.threats.registry import build_threat  # noqa: E402


class Rows(nn.Module):
    """Counts the rows the wrapped model computes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows = 0
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        self.calls.append(x.shape[0])
        return self.net(x)


def naive(model: LoadedModel, ds, eps: float, alpha: float, steps: int, batch_size: int, seed: int) -> torch.Tensor:
    """Final-iterate predictions of torchattacks.PGD over every example (dataset order)."""
    import torchattacks

    torch.manual_seed(seed)
    preds = []
    for start in range(0, len(ds), batch_size):
        x = ds.inputs[start : start + batch_size].to(model.device)
        y = ds.targets[start : start + batch_size].to(model.device)
        adv = torchattacks.PGD(model.module, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
        with torch.no_grad():
            preds.append(model.module(adv).argmax(-1).cpu())
    return torch.cat(preds)


def naive_same_starts(model: LoadedModel, ds, clean: list[Record], eps: float, alpha: float, steps: int,
                      batch_size: int, seed: int) -> torch.Tensor:
    """Final-iterate robustness of torchattacks.PGD on the engine's slices, seeded as the engine seeds them."""
    import torchattacks

    robust = torch.zeros(len(ds), dtype=torch.bool)
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    for start in range(0, len(todo), batch_size):
        pos = todo[start : start + batch_size]
        x, y = ds.inputs[pos].to(model.device), ds.targets[pos].to(model.device)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(batch_seed(seed, start))
            adv = torchattacks.PGD(model.module, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
        with torch.no_grad():
            robust[pos] = (model.module(adv).argmax(-1) == y).cpu()
    return robust


def engine(model: LoadedModel, ds, spec: str, batch_size: int, seed: int, amp: str, early_exit: bool = True) -> list[Record]:
    threat = build_threat(spec)
    threat.early_exit = early_exit
    clean = clean_records(model, ds, batch_size)
    return attack_records(model, ds, threat, clean, batch_size, seed, amp=amp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="digits-vit-sa")
    ap.add_argument("--dataset", default=None, help="default: the card's evaluation dataset")
    ap.add_argument("--split", default="test")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=None, help="default: eps/4 (1/40 at eps 0.1, as the default suite)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="auto", help="robench's --amp (auto: bf16 on CUDA, off on CPU)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the (untimed) accuracy comparison")
    args = ap.parse_args()
    alpha = args.eps / 4 if args.alpha is None else args.alpha
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    ds = load_dataset(args.dataset or model.card.evaluation.get("dataset") or "digits", args.split)
    spec = build_threat(f"pgd:eps={args.eps},alpha={alpha},steps={args.steps},random_start=1").spec

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - t, out

    run_naive = lambda: naive(model, ds, args.eps, alpha, args.steps, args.batch_size, args.seed)  # noqa: E731
    run_engine = lambda: engine(model, ds, spec, args.batch_size, args.seed, args.amp)  # noqa: E731
    run_full = lambda: engine(model, ds, spec, args.batch_size, args.seed, args.amp, early_exit=False)  # noqa: E731
    run_naive(), run_engine(), run_full()  # warm-up
    times: dict[str, list[float]] = {"naive": [], "robench": [], "robench, no early exit": []}
    for k in range(args.repeats):
        order = [("naive", run_naive), ("robench", run_engine), ("robench, no early exit", run_full)]
        for name, fn in (order if k % 2 == 0 else order[::-1]):
            times[name].append(timed(fn)[0])
    med = {k: statistics.median(v) for k, v in times.items()}

    naive_pred = run_naive()
    recs = run_engine()
    labels = ds.targets
    naive_robust = naive_pred == labels
    robench_robust = torch.tensor([r.robust for r in recs])
    clean_ok = torch.tensor([r.clean_correct for r in recs])
    only_naive_broken = int((robench_robust & ~naive_robust).sum())
    counter = Rows(model.module)
    counted = LoadedModel(model.name, counter, model.card, model.sha256)
    naive(counted, ds, args.eps, alpha, args.steps, args.batch_size, args.seed)
    rows_naive, counter.rows = counter.rows, 0
    counter.calls = []
    engine(counted, ds, spec, args.batch_size, args.seed, args.amp)
    rows_engine, calls = counter.rows, counter.calls

    same = naive_same_starts(model, ds, clean_records(model, ds, args.batch_size), args.eps, alpha, args.steps,
                             args.batch_size, args.seed)
    per_seed = []
    for sd in range(args.seed, args.seed + args.seeds):
        n_robust = int((naive(model, ds, args.eps, alpha, args.steps, args.batch_size, sd) == labels).sum())
        r_robust = sum(r.robust for r in engine(model, ds, spec, args.batch_size, sd, args.amp))
        per_seed.append((sd, n_robust / len(ds), r_robust / len(ds)))

    s = summarize(recs)
    print(f"model {model.name}, {ds.name} {ds.split} ({len(ds)} examples, {int(clean_ok.sum())} correct when clean), "
          f"device {device}, amp {amp_name(args.amp, device)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"threat {spec}, batch size {args.batch_size}, {args.repeats} interleaved repeats after a warm-up")
    for name, v in times.items():
        print(f"  {name:24s} median {med[name]:.3f} s  (min {min(v):.3f}, max {max(v):.3f})")
    print(f"ratio robench / naive: {med['robench'] / med['naive']:.2f}  (goal <= 0.60); "
          f"no early exit / naive: {med['robench, no early exit'] / med['naive']:.2f}")
    n_naive, n_robench = int(naive_robust.sum()), int(robench_robust.sum())
    print(f"robust accuracy: naive {n_naive / len(ds):.4f}, robench {n_robench / len(ds):.4f} "
          f"(clean {s.clean_acc:.4f}); goal robench <= naive: {'met' if n_robench <= n_naive else 'NOT met'}")
    print(f"examples naive broke but robench did not: {only_naive_broken}; robench broke but naive did not: "
          f"{int((~robench_robust & naive_robust).sum())}")
    print(f"naive, same starts: robust accuracy {float(same.float().mean()):.4f}; examples it broke but robench did not: "
          f"{int((robench_robust & ~same).sum())}; robench broke but it did not: {int((~robench_robust & same).sum())}")
    print("robust accuracy by seed (naive / robench): " + ", ".join(f"{sd}: {a:.4f} / {b:.4f}" for sd, a, b in per_seed)
          + f"; robench <= naive for {sum(b <= a for _, a, b in per_seed)} of {len(per_seed)} seeds")
    print(f"model rows computed (forward, with or without backward): naive {rows_naive}, robench {rows_engine} "
          f"({rows_engine / rows_naive:.2f}x, clean pass and final checks included)")
    print(f"robench rows per model call (clean pass, then each slice's attack forwards and its final check): {calls}")


if __name__ == "__main__":
    main()
