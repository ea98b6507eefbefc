"""Streaming ImageNet-style trees: memory that does not grow with the dataset, decoding that keeps up.

Two measurements, each a ratio within one run of this script:

memory      peak RSS of ``robench evaluate timm:vit_tiny_patch16_224 --dataset TREE -n 500 --threat
            fgsm:eps=1/255`` (a fresh subprocess each, the process tree's RSS polled every 20 ms, and
            the main process's own peak from wait4) on a 20,000-image tree vs a 2,000-image tree.
            Goal: within 1.2x.
throughput  the clean pass over the 2,000-image tree (``robench.engine.jobs.clean_pass``: JPEG decode +
            timm's eval transform in the default number of DataLoader workers, uint8 batches, the
            model) vs the same model's forward passes over the same images already decoded into one
            tensor (the limit of this machine). Goal: >= 0.8x.

The trees are generated from the CIFAR-10 test JPEGs in ../shared/data/cifar10 (10,000 real
images, each upscaled to a random size of 160-400 px per side, re-encoded as JPEG quality 90, in
10 ImageNet synset folders; the 20,000 tree uses each image twice at two sizes) and cached under
``--trees``. The model has random weights (nothing here needs it to be accurate), saved once so
every subprocess uses the same ones; its head is biased towards the first synset so that some
examples are classified correctly and FGSM has work to do.

Usage: .venv/bin/python benchmarks/imagenet_stream.py [--trees /tmp/robench-trees] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "cifar10_test_jpg_yoongikim.tar.gz"
MODEL = "vit_tiny_patch16_224"


def make_tree(root: Path, images: int, seed: int) -> Path:
    """A synset tree of ``images`` mixed-size JPEGs from the CIFAR-10 test set (cached)."""
    from PIL import Image

    from robench.data.imagenet import synsets

    done = root / ".complete"
    if done.is_file():
        return root
    names = synsets()
    rng = random.Random(seed)
    with tarfile.open(CIFAR) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name)
        classes = sorted({m.name.split("/")[1] for m in members})
        k = 0
        while k < images:
            for m in members:
                if k >= images:
                    break
                cls = m.name.split("/")[1]
                folder = root / names[100 * classes.index(cls)]
                folder.mkdir(parents=True, exist_ok=True)
                im = Image.open(tar.extractfile(m)).convert("RGB")
                im = im.resize((rng.randint(160, 400), rng.randint(160, 400)), Image.BICUBIC)
                im.save(folder / f"{k:06d}.JPEG", quality=90)
                k += 1
    done.write_text("ok\n")
    return root


def save_weights(path: Path) -> Path:
    """Random ViT-tiny weights, head biased towards class 0 (the first synset folder's class)."""
    import timm
    import torch
    from safetensors.torch import save_file

    if not path.is_file():
        torch.manual_seed(0)
        net = timm.create_model(MODEL, num_classes=1000)
        with torch.no_grad():
            net.head.bias[0] += 2.0
        save_file(net.state_dict(), str(path))
    return path


def tree_rss(pid: int) -> int:
    """Resident set size (bytes) of ``pid`` and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def peak_memory(weights: Path, tree: Path, args) -> tuple[float, float, float]:
    """(tree peak GB, main-process peak GB, seconds) of one evaluate run in a fresh process."""
    cmd = [sys.executable, "-m", "robench", "evaluate", f"timm:{MODEL}={weights}", "--dataset", str(tree), "-n", "500",
           "--threat", "fgsm:eps=1/255", "--batch-size", str(args.batch_size), "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def poll() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.02)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    t.join()
    if proc.returncode != 0:
        sys.exit(f"robench evaluate failed on {tree}: {proc.stderr.read()}")
    return peak[0] / 2**30, usage.ru_maxrss * 1024 / 2**30, time.perf_counter() - start


def throughput(weights: Path, tree: Path, args) -> dict:
    """Images/s of the streamed clean pass and of forward passes on pre-decoded tensors."""
    import torch

    from robench.data.loader import Feed, default_workers
    from robench.data.preprocess import from_contract
    from robench.data.registry import load_dataset
    from robench.engine.jobs import clean_pass, head_labels
    from robench.models.loading import load_model

    torch.set_num_threads(args.threads)
    ds = load_dataset(str(tree))
    model = load_model(f"timm:{MODEL}={weights}", "cpu", labels=head_labels(ds))
    from robench.engine.jobs import check_labels

    model, ds = check_labels(model, ds)
    pre = from_contract(model.card.preprocessing)
    workers = default_workers()
    feed = Feed(pre, torch.device("cpu"), workers)
    decoded = Feed(pre, torch.device("cpu"), workers).tensor(ds)  # the reference's input, decoded once, untimed
    plan = [range(s, min(s + args.batch_size, len(ds))) for s in range(0, len(ds), args.batch_size)]

    def forward_only() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for pos in plan:
                model.module(decoded[pos.start : pos.stop])
        return time.perf_counter() - start

    def streamed() -> float:
        start = time.perf_counter()
        cp = clean_pass(model, ds, args.batch_size, feed)
        assert len(cp.positions) == len(ds)
        return time.perf_counter() - start

    forward_only(), streamed()  # warm-up (allocator, worker start-up paths)
    ref, stream = [], []
    for _ in range(args.repeats):  # interleaved: load changes hit both
        ref.append(forward_only())
        stream.append(streamed())
    n = len(ds)
    return {"images": n, "workers": workers, "forward img/s": n / statistics.median(ref),
            "streamed img/s": n / statistics.median(stream), "ratio": statistics.median(ref) / statistics.median(stream)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=Path, default=Path("/tmp/robench-trees"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not CIFAR.is_file():
        sys.exit(f"{CIFAR} not found: the benchmark trees are generated from the CIFAR-10 test JPEGs there")
    args.trees.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    small = make_tree(args.trees / "tree-2000", 2_000, seed=0)
    large = make_tree(args.trees / "tree-20000", 20_000, seed=1)
    weights = save_weights(args.trees / "vit_tiny_random.safetensors")
    print(f"trees ready in {time.perf_counter() - start:.0f} s ({small}, {large}); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.threads} threads; batch {args.batch_size}")
    if not args.skip_memory:
        rows = {name: peak_memory(weights, tree, args) for name, tree in (("2,000", small), ("20,000", large))}
        for name, (tree_gb, main_gb, secs) in rows.items():
            print(f"memory  {name:>6} images: peak RSS {tree_gb:.2f} GB (process tree), {main_gb:.2f} GB (main), {secs:.0f} s")
        ratio = rows["20,000"][0] / rows["2,000"][0]
        print(f"memory  ratio 20,000 / 2,000 (process tree peak): {ratio:.3f}x (goal <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")
    t = throughput(weights, small, args)
    print(f"decode  {t['images']} images, {t['workers']} worker(s): streamed clean pass {t['streamed img/s']:.1f} img/s, "
          f"forward on decoded tensors {t['forward img/s']:.1f} img/s")
    print(f"decode  ratio streamed / decoded: {t['ratio']:.3f}x (goal >= 0.8x: {'met' if t['ratio'] >= 0.8 else 'NOT met'})")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; own CPU "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f} s")


if __name__ == "__main__":
    main()
