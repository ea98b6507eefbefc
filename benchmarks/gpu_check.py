"""One prepared device check: the zoo, a streamed timm ViT-tiny 224 px evaluation in fp32 and bf16,
and BSA's fast path against the literal formula, with a table of images/s.

Stages (each a real robench run or a direct computation; the table says what each measured):

zoo        ``robench evaluate`` on the embedded zoo (default suite), on the device.
stream     ``robench evaluate timm:vit_tiny_patch16_224=W --dataset TREE`` (random weights W, head
           biased towards one class so that attacks have work) on a generated tree of mixed-size JPEGs,
           streamed through timm's eval transform: clean, FGSM and PGD-10 at eps 1/255, with
           ``--amp off`` and ``--amp bf16``; agreement = share of examples whose attacked prediction
           is the same under both (from the per-example records).
bsa        robench's BSA ``Attention`` on the device (fast path: one SDPA call on augmented q/k/v)
           against the literal formula softmax(-||q_i - k_j||^2/h_y - ||p_i - p_j||^2/h_p) written
           with an explicit (B, H, N, N, d) difference tensor, forward and input gradient, at ViT-tiny
           size (197 tokens, 3 heads of 64).

``--device cpu`` runs the same logic with small sizes (CI runs it: tests/test_gpu_check.py).
Usage: bash benchmarks/gpu_check.sh [--device cuda|cpu] [--n 512]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "cifar10_test_jpg_yoongikim.tar.gz"


def robench(*args: str) -> float:
    """Run the robench CLI; returns its wall time (exits with its stderr on failure)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "robench", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"robench {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return time.perf_counter() - start


def make_tree(root: Path, n: int) -> str:
    """``n`` mixed-size JPEGs in 10 synset folders: CIFAR-10 test images when ../shared is there,
    else scikit-learn's digits (both real images), upscaled to 160-400 px."""
    import tarfile

    from PIL import Image

    from robench.data.imagenet import synsets

    names, rng = synsets(), random.Random(0)
    if CIFAR.is_file():
        with tarfile.open(CIFAR) as tar:
            members = sorted((m for m in tar.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name)[::max(1, 10_000 // n)][:n]
            images = [(Image.open(tar.extractfile(m)).convert("RGB"), m.name.split("/")[1]) for m in members]
        source = "CIFAR-10 test JPEGs"
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = [(Image.fromarray((d.images[i] * 255 / 16).astype("uint8")).convert("RGB"), str(d.target[i])) for i in range(n)]
        source = "scikit-learn digits"
    classes = sorted({c for _, c in images})
    for k, (im, c) in enumerate(images):
        folder = root / names[100 * classes.index(c)]
        folder.mkdir(parents=True, exist_ok=True)
        im.resize((rng.randint(160, 400), rng.randint(160, 400)), Image.BICUBIC).save(folder / f"{k:05d}.JPEG", quality=90)
    return source


def stage_stream(work: Path, device: str, n: int, batch: int) -> list[tuple]:
    import timm
    import torch
    from safetensors.torch import save_file

    from robench.results.records import read_records
    from robench.results.store import records_path
    from robench.threats.base import CLEAN
    from robench.threats.registry import build_threat

    source = make_tree(work / "tree", n)
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", num_classes=1000)
    with torch.no_grad():
        net.head.bias[0] += 2.0
    save_file(net.state_dict(), str(work / "w.safetensors"))
    model = f"timm:vit_tiny_patch16_224={work / 'w.safetensors'}"
    threats = ["fgsm:eps=1/255", "pgd:eps=1/255,steps=10"]
    runs = {}
    for amp in ("off", "bf16"):
        out = work / f"out-{amp}"
        seconds = robench("evaluate", model, "--dataset", str(work / "tree"), *[a for t in threats for a in ("--threat", t)],
                          "--device", device, "--amp", amp, "--batch-size", str(batch), "--out", str(out), "--quiet",
                          "--json", str(work / f"rows-{amp}.json"))
        runs[amp] = (json.loads((work / f"rows-{amp}.json").read_text()), out, seconds)
    table = []
    for i, row in enumerate(runs["off"][0]):
        bf = runs["bf16"][0][i]
        rec_off = read_records(records_path(runs["off"][1], row["model"], row["threat"]))
        rec_bf = read_records(records_path(runs["bf16"][1], row["model"], row["threat"]))
        agree = sum(a.attacked_pred == b.attacked_pred for a, b in zip(rec_off, rec_bf)) / len(rec_off)
        attacked = sum(r.clean_correct for r in rec_off)
        what = "clean pass" if row["threat"] == CLEAN else build_threat(row["threat"]).short
        table.append((f"stream {what}", row["n"], row["seconds"], row["n"] / row["seconds"] if row["seconds"] else 0.0,
                      f"fp32 {100 * row['attacked_acc']:.1f}% / bf16 {100 * bf['attacked_acc']:.1f}%, agreement "
                      f"{100 * agree:.1f}% ({attacked} attacked; bf16 {bf['n'] / bf['seconds'] if bf['seconds'] else 0:.1f} img/s)"))
    table.append(("stream total (2 runs)", 2 * n, runs["off"][2] + runs["bf16"][2], 0.0,
                  f"{source}, {row['preprocessing']}"))
    return table


def literal_bsa(attn, x, sq_dist):
    """softmax_j(-||q_i - k_j||^2 / h_y - ||p_i - p_j||^2 / h_p) with the (B, H, N, N, d) differences."""
    b, n, c = x.shape
    h, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
    diff = q[:, :, :, None, :] - k[:, :, None, :, :]
    hy, hp = attn.log_hy.exp()[None, :, None, None], attn.log_hp.exp()[None, :, None, None]
    logits = -(diff * diff).sum(-1) / hy - sq_dist[None, None] / hp
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
    return attn.proj(out)


def stage_bsa(device: str, batch: int) -> list[tuple]:
    import torch

    from robench.models.attention import Attention, TokenPositions, pairwise_sq_dist

    torch.manual_seed(0)
    dev = torch.device(device)
    grid = torch.stack(torch.meshgrid(torch.arange(14), torch.arange(14), indexing="ij"), -1).reshape(-1, 2)
    attn = Attention(192, 3, kind="bsa", hp_init=14.0).to(dev)
    with torch.no_grad():
        attn.log_hy.add_(torch.randn(3, device=dev) * 0.3)
    pos = TokenPositions(grid, num_prefix=1).to(dev)(197, torch.float32)
    sq = pairwise_sq_dist(grid, num_prefix=1).to(dev, torch.float32)
    x = torch.randn(batch, 197, 192, device=dev, requires_grad=True)
    assert attn.uses_expansion(pos)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fast = attn(x, pos=pos)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ref = literal_bsa(attn, x, sq)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    err = float(((fast - ref).abs().max() / ref.abs().max()).detach())
    gerr = float((g_fast - g_ref).abs().max() / g_ref.abs().max())
    ok = err < 1e-4 and gerr < 1e-3
    return [("bsa fast path vs literal", batch, seconds, batch / seconds,
             f"{'ok' if ok else 'MISMATCH'}: max rel. error output {err:.2e}, input grad {gerr:.2e} (fp32, N=197)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=None, help="images of the streamed tree (default 512 on CUDA, 8 on CPU)")
    args = parser.parse_args()
    import torch

    from robench.threats.base import CLEAN

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here; run with --device cpu for the logic check")
    cuda = args.device.startswith("cuda")
    n = args.n or (512 if cuda else 8)
    batch = 128 if cuda else 8
    info = torch.cuda.get_device_name(torch.device(args.device)) if cuda else "CPU"
    print(f"robench gpu_check on {args.device} ({info}); torch {torch.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        zoo_n = [] if cuda else ["-n", "16"]
        seconds = robench("evaluate", "--device", args.device, *zoo_n, "--quiet", "--json", str(work / "zoo.json"))
        zoo = json.loads((work / "zoo.json").read_text())
        flagged = sorted({r["model"] for r in zoo if r["flags"]})
        examples = sum(r["n"] for r in zoo if r["threat"] == CLEAN)
        rows.append(("zoo (default suite)", examples, seconds, 0.0,
                     f"{len(zoo)} rows, {len({r['model'] for r in zoo})} models, flagged: {', '.join(flagged) or 'none'}"))
        rows += stage_stream(work, args.device, n, batch)
        rows += stage_bsa(args.device, 16 if cuda else 2)
    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'n':>6}  {'seconds':>8}  {'img/s':>8}  result")
    for stage, count, secs, rate, result in rows:
        print(f"{stage:<{width}}  {count:>6}  {secs:>8.2f}  {rate if rate else float('nan'):>8.1f}  {result}")
    if any("MISMATCH" in r[4] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
