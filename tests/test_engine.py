"""The attack engine: early exit, autocast with an fp32 check, out-of-memory retry, inference mode.

Values and invariants only, never timings (benchmarks/pgd_eval.py times the engine).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from robench.data.registry import load_dataset
from robench.device import is_out_of_memory, resolve_amp
from robench.errors import RobenchError
from robench.engine.evaluate import EvaluateArgs, evaluate
from robench.engine.jobs import clean_records, select_examples
from robench.models.loading import LoadedModel, load_model
from robench.checks.probe import probe_preprocessing
from robench.results.store import Journal
from robench.engine.runner import attack_records
from robench.seeds import batch_seed
from robench.checks.sanity import model_flags
from robench.threats.monitor import MIN_ROWS
from robench.threats.registry import build_threat

ZOO = ["digits-vit-sa", "digits-vit-bsa", "digits-vit-grc", "digits-vit-bsa-grc"]


class Spy(nn.Module):
    """Records, per call, the batch size, the autocast dtype (None when off) and inference mode;
    raises an out-of-memory error for batches larger than ``max_rows``."""

    def __init__(self, net: nn.Module, max_rows: int | None = None, error: type = torch.cuda.OutOfMemoryError) -> None:
        super().__init__()
        self.net, self.max_rows, self.error = net, max_rows, error
        self.calls: list[tuple[int, torch.dtype | None, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_rows is not None and x.shape[0] > self.max_rows:
            raise self.error(f"CUDA out of memory. Tried to allocate for {x.shape[0]} rows")
        amp = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.calls.append((x.shape[0], amp, torch.is_inference_mode_enabled()))
        return self.net(x)


def spied(model: LoadedModel, **kw) -> tuple[LoadedModel, Spy]:
    spy = Spy(model.module, **kw)
    return LoadedModel(model.name, spy, model.card, model.sha256), spy


def run(model, ds, clean, spec, early_exit=True, batch_size=256, seed=0, **kw):
    threat = build_threat(spec)
    threat.early_exit = early_exit
    return attack_records(model, ds, threat, clean, batch_size, seed, **kw)


def outcome(recs):
    return [(r.id, r.attacked_pred, r.linf, r.l2, r.perturbation, r.queries) for r in recs]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test")


@pytest.fixture(scope="module")
def sa(digits):
    model = load_model("digits-vit-sa", "cpu")
    ds = select_examples(digits, 120, seed=0)
    return model, ds, clean_records(model, ds, 256)


# ---------------------------------------------------------------- early exit
@pytest.mark.parametrize("spec", ["fgsm:eps=0.1", "pgd:eps=0.1,alpha=0.025,steps=20",
                                  "pgd:eps=0.05,alpha=0.01,steps=10,restarts=2", "pgd-l2:eps=1,alpha=0.25,steps=10",
                                  "pgd:eps=0.1,alpha=0.025,steps=10,target=least-likely"])
def test_early_exit_gives_the_full_batch_records(sa, spec):
    model, ds, clean = sa
    on = run(model, ds, clean, spec)
    off = run(model, ds, clean, spec, early_exit=False)
    assert outcome(on) == outcome(off)
    assert 0 < sum(r.robust for r in on) < sum(r.clean_correct for r in on)  # a non-trivial case


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.slow
def test_engine_breaks_a_superset_of_torchattacks_final_iterate(digits, name):
    """Same slices, same slice seeds (hence the same random starts) as the engine: torchattacks.PGD
    followed to its final iterate breaks nothing the engine leaves standing, at two budgets."""
    model = load_model(name, "cpu")
    clean = clean_records(model, digits, 256)
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    for eps in (0.03, 0.1):
        recs = run(model, digits, clean, f"pgd:eps={eps},alpha={eps / 4},steps=20")
        assert outcome(recs) == outcome(run(model, digits, clean, f"pgd:eps={eps},alpha={eps / 4},steps=20", early_exit=False))
        naive_broken = set()
        for start in range(0, len(todo), 256):
            pos = todo[start : start + 256]
            x, y = digits.inputs[pos], digits.targets[pos]
            with torch.random.fork_rng():
                torch.manual_seed(batch_seed(0, start))
                adv = torchattacks.PGD(model.module, eps=eps, alpha=eps / 4, steps=20, random_start=True)(x, y)
            with torch.no_grad():
                naive_broken |= {p for p, b in zip(pos, (model.module(adv).argmax(-1) != y).tolist()) if b}
        broken = {i for i, r in enumerate(recs) if r.clean_correct and not r.robust}
        assert naive_broken <= broken, (name, eps, sorted(naive_broken - broken))
        assert 0 < len(naive_broken) < len(todo)


def test_broken_rows_leave_the_batch_and_a_broken_batch_calls_no_model(sa):
    """Exact call pattern against a hand-written any-iterate loop (no random start): each forward
    computes the rows not yet broken (at least MIN_ROWS), none once all are broken, then one
    full-batch check of the kept inputs; queries still count every forward of the schedule."""
    model, ds, clean = sa
    eps, alpha, steps = 0.3, 0.05, 20
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    x, y = ds.inputs[todo], ds.targets[todo]
    adv, broken, active_rows = x.clone(), torch.zeros(len(y), dtype=torch.bool), []
    for _ in range(steps):
        active_rows.append(int((~broken).sum()))
        adv.requires_grad_(True)
        logits = model.module(adv)
        broken |= logits.argmax(-1) != y
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), adv)
        adv = (x + (adv.detach() + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    assert bool(broken.all()) and active_rows[-1] == 0  # this budget breaks everything before the last step
    expected = [max(k, MIN_ROWS) if k < len(y) else k for k in active_rows if k > 0] + [len(y)]
    m, spy = spied(model)
    recs = run(m, ds, clean, f"pgd:eps={eps},alpha={alpha},steps={steps},random_start=0")
    assert [c[0] for c in spy.calls] == expected
    assert all(r.queries == steps for r in recs if r.clean_correct)
    assert not any(r.robust for r in recs)


# ---------------------------------------------------------------- autocast
def test_amp_resolution():
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) == torch.bfloat16 and resolve_amp("fp16", cpu) == torch.float16
    with pytest.raises(RobenchError, match="unknown --amp 'fp8'"):
        resolve_amp("fp8", cpu)
    with pytest.raises(RobenchError, match="--amp must be one of auto, off, bf16, fp16"):
        EvaluateArgs(amp="fp8")


def test_amp_auto_on_cpu_is_fp32(sa):
    model, ds, clean = sa
    m, spy = spied(model)
    auto = run(m, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=5", amp="auto")
    assert {c[1] for c in spy.calls} == {None}
    assert outcome(auto) == outcome(run(model, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=5"))


@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_attacks_under_autocast_and_records_fp32_predictions(sa, amp, dtype):
    model, ds, clean = sa
    m, spy = spied(model)
    keep: dict = {}
    warnings: list[str] = []
    recs = run(m, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=10", amp=amp,
               keep_adv=lambda pos, adv: keep.update(zip(pos, adv.cpu())), on_warning=warnings.append)
    # every attack forward ran under autocast (the last one of them re-verifies the kept inputs),
    # then one fp32 forward of the kept inputs in inference mode gave the recorded predictions
    assert [c[1] for c in spy.calls[:-1]] == [dtype] * (len(spy.calls) - 1)
    assert spy.calls[-1] == (len(keep), None, True)
    idx = sorted(keep)
    with torch.inference_mode():
        fp32 = model.module(torch.stack([keep[i] for i in idx])).argmax(-1)
    assert [recs[i].attacked_pred for i in idx] == fp32.tolist()
    assert warnings == []  # on this model autocast and fp32 agree on (nearly) every outcome
    fp32_recs = run(model, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=10")
    assert abs(sum(r.robust for r in recs) - sum(r.robust for r in fp32_recs)) <= 2  # fp16: gradients rescaled per row


class HalfLies(nn.Module):
    """Under autocast, predicts class (label + 1) for the examples whose id is even."""

    def __init__(self, net: nn.Module, lie: torch.Tensor) -> None:
        super().__init__()
        self.net, self.lie = net, lie

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if torch.is_autocast_enabled("cpu"):
            hit = (x.flatten(1)[:, None, :] == self.lie.flatten(1)[None, :, :]).all(-1).any(-1)  # clean inputs only
            logits = logits + 100 * hit[:, None] * F.one_hot((logits.argmax(-1) + 1) % 10, 10)
        return logits


def test_amp_disagreement_is_recorded_as_fp32_and_warned(sa):
    """A model whose autocast outputs lie on some clean inputs: the attack sees those broken at once,
    the fp32 check finds them correct, the records say robust, and the warning counts them."""
    model, ds, clean = sa
    todo = [i for i, r in enumerate(clean) if r.clean_correct]
    lie = [i for i in todo if ds.ids[i] % 2 == 0]
    liar = LoadedModel(model.name, HalfLies(model.module, ds.inputs[lie]), model.card, model.sha256)
    warnings: list[str] = []
    recs = run(liar, ds, clean, "fgsm:eps=0.0", amp="bf16", on_warning=warnings.append)
    assert all(recs[i].robust for i in todo)  # eps=0: nothing can really break
    assert warnings == [f"digits-vit-sa · fgsm:eps=0: fp32 and bfloat16 autocast disagree on whether {len(lie)} of "
                        f"{len(todo)} attacked examples are broken (recorded: fp32); rerun with --amp off for attacks "
                        "computed in fp32"]


# ---------------------------------------------------------------- out of memory
def test_out_of_memory_halves_the_slice_and_journals_it_whole(sa, tmp_path):
    model, ds, clean = sa
    spec = "pgd:eps=0.08,alpha=0.02,steps=5"  # random start: the seeds of the pieces matter
    m, spy = spied(model, max_rows=16)
    warnings: list[str] = []
    journal = Journal(tmp_path / "j.jsonl")
    recs = run(m, ds, clean, spec, batch_size=64, journal=journal, on_warning=warnings.append)
    assert outcome(recs) == outcome(run(model, ds, clean, spec, batch_size=16))  # pieces of 16 at 0, 16, 32, ...
    assert outcome(recs) != outcome(run(model, ds, clean, spec, batch_size=64))  # other seeds, other draws
    assert len(warnings) == 1 and "out of memory with 64 examples per batch; continuing with 32" in warnings[0]
    n = sum(r.clean_correct for r in recs)
    markers = [json.loads(l)["_batch"] for l in journal.path.read_text().splitlines() if "_batch" in l]
    assert markers == [64] * (n // 64) + ([n % 64] if n % 64 else [])  # slices enter the journal whole
    assert max(c[0] for c in spy.calls) <= 16


def test_out_of_memory_on_cpu_and_at_one_example(sa):
    model, ds, clean = sa
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    m, _ = spied(model, max_rows=16, error=RuntimeError)
    warnings: list[str] = []
    recs = run(m, ds, clean, "fgsm:eps=0.1", batch_size=64, on_warning=warnings.append)
    assert outcome(recs) == outcome(run(model, ds, clean, "fgsm:eps=0.1"))  # FGSM draws nothing: any split agrees
    assert len(warnings) == 1
    m, _ = spied(model, max_rows=0)
    with pytest.raises(RobenchError, match="out of memory on cpu attacking a single example with fgsm"):
        run(m, ds, clean, "fgsm")


def test_other_errors_are_not_retried(sa):
    model, ds, clean = sa
    m, spy = spied(model, max_rows=8, error=ValueError)
    with pytest.raises(RobenchError):  # the threat turns ValueError into a one-line error; no retry
        run(m, ds, clean, "fgsm")
    assert spy.calls == []


# ---------------------------------------------------------------- inference mode
def test_clean_passes_run_in_inference_mode(sa):
    model, ds, _ = sa
    m, spy = spied(model)
    clean_records(m, ds, 50)
    assert spy.calls and all(c[2] for c in spy.calls)
    spy.calls.clear()
    probe_preprocessing(m, ds, 0.97)
    assert spy.calls and all(c[2] for c in spy.calls)
    spy.calls.clear()
    model_flags(m, ds, 0)
    assert spy.calls[0][2] and spy.calls[1][2]  # the two clean forwards (the gradient checks need grad)


def test_evaluate_passes_amp_through(sa, tmp_path):
    model, ds, _ = sa
    rows = evaluate(EvaluateArgs(models=["digits-vit-sa"], num_examples=60, device="cpu", amp="bf16",
                                 threats=["pgd:eps=0.1,alpha=0.025,steps=3"], out=tmp_path))
    assert json.loads((tmp_path / "run.json").read_text())["amp"] == "bf16"
    assert rows[1].attacked_acc <= rows[0].clean_acc


def test_parameters_are_frozen_during_the_attack_and_restored(sa):
    model, ds, clean = sa
    seen = []

    class Watch(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            seen.append((any(p.requires_grad for p in self.net.parameters()), torch.is_inference_mode_enabled()))
            return self.net(x)

    watched = LoadedModel(model.name, Watch(model.module), model.card, model.sha256)
    recs = run(watched, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=3")
    assert [frozen for frozen, _ in seen[:-1]] == [False] * 3  # the three attack forwards
    assert seen[-1][1]  # then the check of the kept inputs, in inference mode
    assert all(p.requires_grad for p in model.module.parameters())
    assert outcome(recs) == outcome(run(model, ds, clean, "pgd:eps=0.1,alpha=0.025,steps=3"))
