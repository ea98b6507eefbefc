"""BSA attention layer vs standard softmax SDPA: forward+backward time and peak memory.

Compares robench's ``Attention(kind="bsa")`` (one bias-free SDPA call on augmented q/k/v, see
``robench/models/attention.py``) with ``Attention(kind="sa")`` (``q.k / sqrt(d)`` softmax SDPA) of
the same size: width = heads x head_dim, the qkv and output projections included. Tokens are a CLS
token plus a sqrt(N) x sqrt(N) patch grid (what robench's ViT feeds BSA: N + 1 tokens, the CLS
token without spatial term, 5 extra dims per head); ``--no-cls`` drops the CLS token (3 extra
dims). BSA's step includes fetching the position features (built once per length, then cached,
as in a model) and the guard that picks the path. ``h_p`` is at the ViT's init (mean squared
patch distance), so the fast path is taken (the last column says which path ran).

Time: forward, then backward of a fixed random output gradient, both layers in the same process,
interleaved (SA, BSA, SA, BSA, ...) after one warm-up each; the median of ``--repeats``. On a
CPU shared with other jobs, ``--threads 1`` gives far steadier ratios: a multi-threaded kernel
waits for its slowest thread, so one busy core stalls the whole step. ``--clock cpu`` (CPU only,
with ``--threads 1``) times the process's CPU time instead of wall time, so that time slices
taken by other jobs do not count (memory-bandwidth contention still does).

Peak memory, the extra memory one forward+backward needs on top of the layer, its input and the
output gradient (parameter gradients included):
  * CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before the step.
  * CPU: each measurement runs in a fresh subprocess: imports, a warm-up step at a small N
    (thread pools, kernels), the inputs at the real N; then it resets the kernel's peak-RSS mark
    (``5`` into ``/proc/self/clear_refs``), runs one step and reports ``VmHWM`` minus the ``VmRSS``
    before the step (from ``/proc/self/status``). ``MALLOC_MMAP_THRESHOLD_=65536`` is set in the
    child so that glibc serves every block above 64 KiB by mmap and unmaps it on free: RSS then
    follows the live tensors rather than the malloc heap's high-water mark. RSS counts every
    byte touched (also allocations no PyTorch hook sees), the same way for both layers.

Usage: ``.venv/bin/python benchmarks/bsa_attention.py [--sizes 256 1024 4096] [--repeats 5]
[--device cpu|cuda] [--threads T] [--no-cls] [--with-bias]``. ``--with-bias`` adds BSA's exact
``(B, H, N, N)`` additive-bias path (the implementation before the augmentation) for comparison.
Goals (issue 8): time ratio <= 1.10 and memory ratio <= 1.2 at every N.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import torch

from robench.models.attention import Attention, TokenPositions


def make(kind: str, n_grid: int, cls: bool, args, device: torch.device):
    """The layer, its positions, input and output gradient for an N-patch grid (same seed for both)."""
    g = math.isqrt(n_grid)
    if g * g != n_grid:
        raise SystemExit(f"N={n_grid} is not a square number (the tokens are a sqrt(N) x sqrt(N) grid)")
    dim = args.heads * args.head_dim
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    positions = TokenPositions(torch.stack([rows.flatten(), cols.flatten()], 1), num_prefix=int(cls)).to(device)
    hp_init = (g * g - 1) / 3 if g > 1 else 1.0  # mean squared patch distance, the ViT's h_p init
    torch.manual_seed(0)
    layer = Attention(dim, args.heads, kind=kind, hp_init=hp_init).to(device)
    gen = torch.Generator().manual_seed(1)
    n = n_grid + int(cls)
    x = torch.randn(args.batch, n, dim, generator=gen).to(device).requires_grad_()
    grad_out = torch.randn(args.batch, n, dim, generator=gen).to(device)
    return layer, positions, x, grad_out


def step(layer: Attention, positions: TokenPositions, x: torch.Tensor, grad_out: torch.Tensor,
         bias: bool = False) -> None:
    """One forward+backward (grads reset first, so every step allocates the same).

    ``bias``: BSA through the exact ``(B, H, N, N)`` additive-bias path (the previous implementation).
    """
    layer.zero_grad(set_to_none=True)
    x.grad = None
    if layer.kind == "sa":
        layer(x).backward(grad_out)
    elif bias:
        layer(x, sq_dist=positions.sq_dist(x.shape[1])).backward(grad_out)
    else:
        layer(x, pos=positions(x.shape[1], x.dtype)).backward(grad_out)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(n_grid: int, kinds: list[str], args, device: torch.device) -> tuple[dict[str, float], bool]:
    """Median fwd+bwd seconds per kind (interleaved), and whether BSA took the fast path."""
    runs = {kind: (*make(kind.split("-")[0], n_grid, not args.no_cls, args, device), kind == "bsa-bias")
            for kind in kinds}
    layer, positions, x, *_ = runs["bsa"]
    fast = layer.uses_expansion(positions(x.shape[1]))
    for run in runs.values():  # warm-up
        step(*run)
    sync(device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for _ in range(args.repeats):
        for kind, run in runs.items():
            sync(device)
            t0 = clock()
            step(*run)
            sync(device)
            times[kind].append(clock() - t0)
    return {kind: statistics.median(t) for kind, t in times.items()}, fast


def peak_memory_here(kind: str, n_grid: int, args, device: torch.device) -> int:
    """Bytes one step needs beyond what is allocated before it (this process; see the docstring)."""
    layer_kind, bias = kind.split("-")[0], kind == "bsa-bias"
    step(*make(layer_kind, 16, not args.no_cls, args, device), bias)  # warm-up at a small N
    run = make(layer_kind, n_grid, not args.no_cls, args, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(*run, bias)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset VmHWM to the current RSS
        f.write("5")
    base = _proc_status_kib("VmRSS")
    step(*run, bias)
    return (_proc_status_kib("VmHWM") - base) * 1024


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory(kind: str, n_grid: int, args, device: torch.device) -> int:
    if device.type == "cuda":
        return peak_memory_here(kind, n_grid, args, device)
    cmd = [sys.executable, __file__, "--_memory-child", kind, "--sizes", str(n_grid), "--device", "cpu",
           "--batch", str(args.batch), "--heads", str(args.heads), "--head-dim", str(args.head_dim)]
    cmd += ["--no-cls"] * args.no_cls + (["--threads", str(args.threads)] if args.threads else [])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096], help="patch counts N (squares)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per layer and N")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall time, or the process's CPU time (CPU device with --threads 1 only)")
    ap.add_argument("--no-cls", action="store_true", help="no CLS token: N grid tokens only")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument("--with-bias", action="store_true",
                    help="also run BSA's exact (B, H, N, N) bias path (the previous implementation; O(N^2) memory)")
    ap.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        ap.error("--clock cpu needs --device cpu and --threads 1 (CPU time sums threads' spin-waits)")
    if args.memory_child:
        print(peak_memory_here(args.memory_child, args.sizes[0], args, device))
        return
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} batch={args.batch} "
          f"heads={args.heads} head_dim={args.head_dim} tokens=N{'' if args.no_cls else '+1 (CLS)'} "
          f"repeats={args.repeats} (median, {args.clock} clock)")
    kinds = ["sa", "bsa"] + ["bsa-bias"] * args.with_bias
    head = f"{'N':>6} {'SA ms':>9} {'BSA ms':>9} {'time x':>7}"
    head += "" if args.no_memory else f" {'SA MiB':>8} {'BSA MiB':>8} {'mem x':>6}"
    if args.with_bias:
        head += f" {'bias ms':>9} {'time x':>7}" + ("" if args.no_memory else f" {'bias MiB':>9} {'mem x':>6}")
    print(head + "  BSA path")
    for n_grid in args.sizes:
        t, fast = time_steps(n_grid, kinds, args, device)
        mem = {} if args.no_memory else {kind: peak_memory(kind, n_grid, args, device) for kind in kinds}
        row = f"{n_grid:>6} {t['sa'] * 1e3:9.1f} {t['bsa'] * 1e3:9.1f} {t['bsa'] / t['sa']:7.3f}"
        if mem:
            row += f" {mem['sa'] / 2**20:8.1f} {mem['bsa'] / 2**20:8.1f} {mem['bsa'] / mem['sa']:6.3f}"
        if args.with_bias:
            row += f" {t['bsa-bias'] * 1e3:9.1f} {t['bsa-bias'] / t['sa']:7.3f}"
            if mem:
                row += f" {mem['bsa-bias'] / 2**20:9.1f} {mem['bsa-bias'] / mem['sa']:6.3f}"
        print(row + ("  fast (no bias)" if fast else "  FALLBACK (bias)"), flush=True)


if __name__ == "__main__":
    main()
