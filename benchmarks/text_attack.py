"""Native pwws-fast vs textattack's PWWSRen2019 on the same model and examples, in one process.

Prints both wall times (WordNet and textattack already loaded, so only the attacks are timed),
the ratio, both attack success rates and how many adversarial texts are identical.

    .venv/bin/python benchmarks/text_attack.py [--model wordnet-text-sa] [-n 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

from robench.data.registry import load_dataset
from robench.engine.jobs import clean_records, select_examples
from robench.models.loading import load_model
from robench.resources.nltk_setup import import_textattack
from robench.results.records import summarize
from robench.engine.runner import attack_records
from robench.threats.registry import build_threat
from robench.threats.text.synonyms import wordnet_synonyms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wordnet-text-sa")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = load_model(args.model, args.device)
    ds = select_examples(load_dataset(model.card.evaluation["dataset"], "test"), args.n, args.seed)
    clean = clean_records(model, ds, 256)
    import_textattack()
    wordnet_synonyms("warm")  # load WordNet's indexes before timing either engine

    timings, results = {}, {}
    for spec in ("pwws", "pwws-fast"):
        start = time.perf_counter()
        results[spec] = attack_records(model, ds, build_threat(spec), clean, 256, args.seed)
        timings[spec] = time.perf_counter() - start

    ta, fast = results["pwws"], results["pwws-fast"]
    both = [(a, b) for a, b in zip(ta, fast) if a.clean_correct and not a.robust and not b.robust]
    same = sum(a.adv_text == b.adv_text for a, b in both)
    attacked = sum(r.clean_correct for r in ta)
    print(f"model {args.model}, n={len(ds)} ({attacked} attacked), device {args.device}")
    for spec in ("pwws", "pwws-fast"):
        s = summarize(results[spec])
        print(f"  {spec:10s} {timings[spec]:7.2f} s   success rate {100 * s.attack_success_rate:5.1f}%   "
              f"accuracy under attack {100 * s.attacked_acc:5.1f}%   mean queries {s.mean_queries:6.1f}")
    print(f"  identical adversarial text on {same}/{len(both)} examples both broke")
    print(f"ratio textattack/native time: {timings['pwws'] / timings['pwws-fast']:.1f}x")


if __name__ == "__main__":
    main()
