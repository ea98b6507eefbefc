"""The registered DeiT-tiny configs against timm's own ``deit_tiny_patch16_224``: parameter count and
the CPU time of one forward pass of one 224 x 224 image.

Every model is built locally with random weights (no download), in eval mode under
``torch.inference_mode``; after one warm-up pass each, the models are timed interleaved (one round
runs each once) so that load on a shared machine hits all of them alike; medians reported.

    .venv/bin/python benchmarks/timm_deit.py [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import timm

    import robench  # noqa: F401  (registers robench_deit_* with timm)

    names = ["deit_tiny_patch16_224"] + [f"robench_deit_tiny_{v}_patch16_224" for v in ("sa", "bsa", "grc", "bsa_grc")]
    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in names}
    x = torch.rand(1, 3, 224, 224)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for _ in range(args.repeats):
            for n, m in models.items():
                t = time.perf_counter()
                m(x)
                times[n].append(time.perf_counter() - t)
    ref = statistics.median(times[names[0]])
    print(f"{args.repeats} interleaved forward passes of one 3x224x224 image each, {args.threads} thread(s), "
          f"torch {torch.__version__}, timm {timm.__version__}")
    print(f"{'model':38s} {'params':>10s} {'vs deit':>8s} {'median ms':>10s} {'min ms':>8s} {'vs deit':>8s}")
    n_ref = sum(p.numel() for p in models[names[0]].parameters())
    for n in names:
        params = sum(p.numel() for p in models[n].parameters())
        med = statistics.median(times[n])
        print(f"{n:38s} {params:>10,d} {params / n_ref:>7.4f}x {1000 * med:>10.1f} {1000 * min(times[n]):>8.1f} {med / ref:>7.2f}x")


if __name__ == "__main__":
    main()
