"""Summarises repeated runs of benchmarks/run_editing.sh (each with its own BENCH_OUT): one row per run,
then the median and range over runs of each figure, for the ROME part (seconds per edit) or the stats
part (key-statistics tokens per second). A run's own spread is across its records; this is the spread
across repeats, which is what the shared, noisy machine changes.

  python benchmarks/summarise_repeats.py benchmarks/results/editing-rome benchmarks/results/editing-rome-2 ...
  python benchmarks/summarise_repeats.py --part stats benchmarks/results/editing-stats-3/run-*
"""
import argparse
import json
import os
import statistics


def rome_row(out_dir, summary):
    rome, ratios = summary["rome"], summary["ratios_easyedit_over_engram"]
    engram = json.load(open(os.path.join(out_dir, "editing", "engram-rome.json")))
    return engram.get("time_utc", "?"), {
        "engram": rome["engram"]["edit_seconds"]["median"],
        "easyedit": rome["easyedit_rome_only_seconds"]["median"],
        "ratio": ratios["rome_seconds_per_edit_median"],
        "engram_rss": rome["engram"]["peak_rss_mib"],
        "easyedit_rss": rome["easyedit"]["peak_rss_mib"],
        "rss_ratio": ratios["rome_peak_rss"],
    }


def stats_row(out_dir, summary):
    stats = summary["statistics"]
    engram = json.load(open(os.path.join(out_dir, "editing", "engram-stats.json")))
    return engram.get("time_utc", "?"), {
        "engram": stats["engram"]["tokens_per_s"],
        "easyedit": stats["easyedit"]["tokens_per_s"],
        "ratio": summary["ratios_easyedit_over_engram"]["statistics_time"],
        "engram_rss": stats["engram"]["peak_rss_mib"],  # EasyEdit's statistics part records no peak
    }


PARTS = {"rome": (rome_row, "s/edit", 2), "stats": (stats_row, "tokens/s", 0)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), default="rome")
    ap.add_argument("runs", nargs="+", help="BENCH_OUT folders of the runs")
    args = ap.parse_args()
    row_of, unit, digits = PARTS[args.part]
    rows = []
    for d in args.runs:
        summary = json.load(open(os.path.join(d, "editing.json")))
        started, row = row_of(d, summary)
        load = f"{summary['run']['load_before'].split()[0]}→{summary['run']['load_after'].split()[0]}"
        rows.append(dict(row, run=os.path.normpath(d), started=started, load=load))
    print(f"| run | started (UTC) | load before→after | Engram {unit} | EasyEdit {unit} | EasyEdit ÷ Engram (time) | "
          f"peak RSS MiB Engram / EasyEdit |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        easyedit_rss = f"{r['easyedit_rss']:.0f}" if "easyedit_rss" in r else "–"
        print(f"| {r['run']} | {r['started']} | {r['load']} | {r['engram']:.{digits}f} | {r['easyedit']:.{digits}f} | "
              f"{r['ratio']:.2f}× | {r['engram_rss']:.0f} / {easyedit_rss} |")

    def over_runs(key, places, unit=""):
        values = [r[key] for r in rows]
        return f"{statistics.median(values):.{places}f}{unit} ({min(values):.{places}f}–{max(values):.{places}f})"

    rss = f"peak RSS ratio {over_runs('rss_ratio', 2, '×')}" if all("rss_ratio" in r for r in rows) else ""
    print(f"| median (range) of {len(rows)} runs | | | {over_runs('engram', digits)} | {over_runs('easyedit', digits)} | "
          f"{over_runs('ratio', 2, '×')} | {rss} |")


if __name__ == "__main__":
    main()
