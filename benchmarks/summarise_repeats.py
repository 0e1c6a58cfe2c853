"""Summarises repeated ROME runs of benchmarks/run_editing.sh (each with its own BENCH_OUT): one row per
run, then the median and range over runs of each figure. A run's own spread is across its records; this
is the spread across repeats, which is what the shared, noisy machine changes.

  python benchmarks/summarise_repeats.py benchmarks/results/editing-rome benchmarks/results/editing-rome-2 ...
"""
import json
import os
import statistics
import sys


def run_row(out_dir):
    summary = json.load(open(os.path.join(out_dir, "editing.json")))
    rome, ratios = summary["rome"], summary["ratios_easyedit_over_engram"]
    engram = json.load(open(os.path.join(out_dir, "editing", "engram-rome.json")))
    return {
        "run": os.path.basename(out_dir.rstrip("/")),
        "time_utc": engram.get("time_utc", "?"),
        "load": f"{summary['run']['load_before'].split()[0]}→{summary['run']['load_after'].split()[0]}",
        "engram_s": rome["engram"]["edit_seconds"]["median"],
        "easyedit_s": rome["easyedit_rome_only_seconds"]["median"],
        "ratio": ratios["rome_seconds_per_edit_median"],
        "engram_rss": rome["engram"]["peak_rss_mib"],
        "easyedit_rss": rome["easyedit"]["peak_rss_mib"],
        "rss_ratio": ratios["rome_peak_rss"],
    }


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    rows = [run_row(d) for d in dirs]
    print("| run | started (UTC) | load before→after | Engram s/edit | EasyEdit s/edit | ratio | peak RSS MiB Engram / EasyEdit |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['time_utc']} | {r['load']} | {r['engram_s']:.2f} | {r['easyedit_s']:.2f} | "
              f"{r['ratio']:.2f}× | {r['engram_rss']:.0f} / {r['easyedit_rss']:.0f} |")

    def over_runs(key, unit=""):
        values = [r[key] for r in rows]
        return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f})"

    print(f"| median (range) of {len(rows)} runs | | | {over_runs('engram_s')} | {over_runs('easyedit_s')} | "
          f"{over_runs('ratio', '×')} | peak RSS ratio {over_runs('rss_ratio', '×')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
