"""CPU threads: what robench's default should be, measured idle and beside a competing CPU job.

Each case is a fresh ``robench`` process timed end to end (start-up included), in one of these
configurations:

    N threads spinning   ``--threads N`` for N = 1 .. cores with OpenMP's default wait policy (idle
                         threads spin a while before sleeping): N = cores is torch's own default,
                         what robench did before it set a policy
    N threads passive    ``--threads N`` with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep): what
                         the robench CLI sets unless the user chose a policy

and under two loads: idle, and beside one busy-looping process (``python -c "while True: pass"``,
the "another job on a shared machine" case). Configurations are interleaved, ``--repeats`` times;
medians are reported and every figure is a ratio against the torch default idle in the same run.

Workloads (the issue's examples): the quickstart's first model on the default suite
(``robench evaluate digits-vit-sa``), ``robench attack digits-vit-sa --threat pgd:eps=0.1 -n 50``,
and a heavier model: a ViT-tiny 224 px clean pass on 32 generated images (``--suite clean``).

Usage: .venv/bin/python benchmarks/threads.py [--repeats 2] [--skip-vit]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def workloads(tmp: Path, skip_vit: bool) -> dict[str, list[str]]:
    out = {
        "evaluate digits-vit-sa (default suite)": ["evaluate", "digits-vit-sa", "--quiet"],
        "attack pgd:eps=0.1 -n 50": ["attack", "digits-vit-sa", "--threat", "pgd:eps=0.1", "-n", "50", "--quiet"],
    }
    if not skip_vit:
        import torch
        from safetensors.torch import save_file

        sys.path.insert(0, str(REPO / "benchmarks"))
        from gpu_check import make_tree

        make_tree(tmp / "tree", 32)
        import timm

        torch.manual_seed(0)
        save_file(timm.create_model("vit_tiny_patch16_224", num_classes=1000).state_dict(), str(tmp / "w.safetensors"))
        out["ViT-tiny 224 clean pass, 32 images"] = [
            "evaluate", f"timm:vit_tiny_patch16_224={tmp / 'w.safetensors'}", "--dataset", str(tmp / "tree"), "--suite",
            "clean", "--batch-size", "16", "--quiet"]
    return out


def run(args: list[str], threads: int, passive: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ROBENCH_THREADS", "OMP_WAIT_POLICY")}
    # empty: the CLI keeps the user's (empty) choice and libgomp then uses its default policy
    env["OMP_WAIT_POLICY"] = "PASSIVE" if passive else ""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "robench", *args, "--threads", str(threads)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"robench {' '.join(args)} failed: {proc.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-vit", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    configs = [(n, False) for n in range(1, cores + 1)] + [(n, True) for n in range(1, cores + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        cases = workloads(Path(tmp), args.skip_vit)
        print(f"{cores} cores; load average before {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
              f"{args.repeats} interleaved repeats, medians; ratio = time / ({cores} threads spinning = torch's default, idle)")
        for name, cmd in cases.items():
            times: dict[tuple[str, int, bool], list[float]] = {}
            for load in ("idle", "1 busy process"):
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
                try:
                    time.sleep(0.5 if hog else 0)
                    for _ in range(args.repeats):
                        for threads, passive in configs:
                            times.setdefault((load, threads, passive), []).append(run(cmd, threads, passive))
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
            ref = statistics.median(times[("idle", cores, False)])
            print(f"\n{name}")
            print(f"  {'configuration':<26} {'idle':>16} {'beside a busy process':>24}")
            for threads, passive in configs:
                label = f"{threads} thread{'s' if threads > 1 else ''} " + ("passive" if passive else "spinning")
                label += " (robench's default)" if threads == cores and passive else ""
                cells = []
                for load in ("idle", "1 busy process"):
                    t = statistics.median(times[(load, threads, passive)])
                    cells.append(f"{t:7.2f}s {t / ref:5.2f}x")
                print(f"  {label:<26} {cells[0]:>16} {cells[1]:>24}")
        print(f"\nload average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
