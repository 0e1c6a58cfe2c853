"""Paired difference of two `engram eval` runs on the same records: for each metric, the mean of
(A − B) over the records both have, a 95% bootstrap interval of that mean (records resampled, seed 0),
and how many records each run wins. Tells a real gap from noise when two methods' means are close.

  python3 results/paired_difference.py A.json B.json [--timing final|post] [--metrics m1,m2,...]

Standard library only; `engram eval --json` files (format engram-eval-1), and the CounterFact scores of
benchmarks/editing/easyedit_sequential.py (format easyedit-sequential-1).
"""
import argparse
import json
import random

DEFAULT_METRICS = ["counterfact.efficacy_score", "counterfact.efficacy_magnitude", "counterfact.paraphrase_score",
                   "counterfact.neighborhood_score", "counterfact.neighborhood_magnitude", "knowedit.reliability",
                   "knowedit.locality"]


def per_record(path, timing):
    with open(path) as f:
        run = json.load(f)
    if run.get("format") == "easyedit-sequential-1":
        # benchmarks/editing/easyedit_sequential.py: EasyEdit's MEMIT scored with the same keys.
        return "EasyEdit " + run["method"], {str(r["case_id"]): r.get(timing) or {} for r in run["per_record"]}
    if run.get("format") != "engram-eval-1":
        raise SystemExit(f"{path}: neither an `engram eval --json` file nor an easyedit_sequential.py one "
                         f"(format {run.get('format')!r})")
    return run["header"]["method"]["name"], {str(r["case_id"]): r.get(timing) or {} for r in run["records"] if not r.get("error")}


def bootstrap_interval(diffs, rounds=5000, seed=0):
    rnd = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rnd.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--timing", default="final", choices=["final", "post"],
                    help="sequential runs: after all edits (final) or right after each edit (post)")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    args = ap.parse_args()
    name_a, a = per_record(args.a, args.timing)
    name_b, b = per_record(args.b, args.timing)
    print(f"{name_a} − {name_b}, '{args.timing}' scores × 100, per-record pairs\n")
    print(f"| metric | records | {name_a} | {name_b} | difference | 95% interval | {name_a} better | {name_b} better |")
    print("|---|---|---|---|---|---|---|---|")
    for metric in args.metrics.split(","):
        ids = sorted(i for i in a if metric in a[i] and metric in b.get(i, {}))
        if not ids:
            print(f"| {metric} | 0 | | | | | | |")
            continue
        diffs = [a[i][metric] - b[i][metric] for i in ids]
        lo, hi = bootstrap_interval(diffs)
        mean = lambda xs: 100 * sum(xs) / len(xs)
        print(f"| {metric} | {len(ids)} | {mean([a[i][metric] for i in ids]):.2f} | {mean([b[i][metric] for i in ids]):.2f} | "
              f"{mean(diffs):+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] | {sum(d > 0 for d in diffs)} | {sum(d < 0 for d in diffs)} |")


if __name__ == "__main__":
    main()
