#!/usr/bin/env python3
"""Reads the JSON written by EngramBench and the peer scripts and prints a Markdown table of medians,
spreads and ratios (Engram ÷ peer, so a ratio above 1 means Engram is faster). Given several output
folders (repeated runs), prints the median and range over the runs instead."""
import json, os, statistics, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def rates(d):
    if "results_tokens_per_second" in d:  # EngramBench
        return d["results_tokens_per_second"], d.get("peak_rss_bytes")
    res = {k: v["tok_per_s"] for k, v in d["results"].items()}
    return res, (d.get("peak_rss_mib") or 0) * 2**20 or None

PEERS = [("llama.cpp", "llamacpp.json"), ("transformers", "transformers.json")]


def metric_names(rows):
    """Engram's figures in the order prompt lengths ascending, then decoding (pp2, pp128, ..., tg128)."""
    keys = list(rows[0][1])
    return sorted(keys, key=lambda k: (not k.startswith("pp"), int("".join(c for c in k if c.isdigit()) or 0)))


def header(metrics):
    return ("| engine | " + " | ".join(f"{k} tok/s" for k in metrics) + " | peak RSS MiB |\n|" + "---|" * (len(metrics) + 2),
            "| Engram ÷ peer | " + " | ".join(metrics) + " | peak RSS |\n|" + "---|" * (len(metrics) + 2))


def engines(out):
    """(name, rates, peak RSS bytes) of Engram and of each peer that ran in the folder `out`."""
    engram, engram_rss = rates(load(os.path.join(out, "engram.json")))
    rows = [("Engram", engram, engram_rss)]
    for name, file in PEERS:
        p = os.path.join(out, file)
        if os.path.exists(p):
            r, rss = rates(load(p))
            rows.append((name, r, rss))
    return rows


def ratios(rows):
    """Engram ÷ peer per metric (and peak RSS), per peer."""
    _, engram, engram_rss = rows[0]
    out = {}
    for name, r, rss in rows[1:]:
        out[name] = {k: engram[k]["median"] / r[k]["median"] for k in metric_names(rows) if k in r and k in engram}
        if rss and engram_rss:
            out[name]["peak RSS"] = engram_rss / rss
    return out


def table(out):
    rows = engines(out)
    metrics = metric_names(rows)
    engines_header, ratios_header = header(metrics)
    print(engines_header)
    for name, r, rss in rows:
        cells = []
        for k in metrics:
            v = r.get(k)
            cells.append("—" if v is None else f"{v['median']:.1f} ({v['min']:.1f}–{v['max']:.1f})")
        print(f"| {name} | " + " | ".join(cells) + (f" | {rss / 2**20:.0f} |" if rss else " | — |"))
    print()
    print(ratios_header)
    for name, r in ratios(rows).items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.2f}x" if k in r else "—" for k in metrics + ["peak RSS"]) + " |")


def over_runs(dirs):
    """Several runs of run_inference.sh: each engine's median tok/s and each ratio as the median
    (min–max) over the runs, the spread a shared machine puts between repeats of the whole run. Engines
    are matched by name; a figure is summarised over the runs that have it (the count shows when not all)."""
    runs = [engines(d) for d in dirs]
    names = list(dict.fromkeys(name for run in runs for name, _, _ in run))

    def med(xs, f, unit=""):
        if not xs:
            return "—"
        note = "" if len(xs) == len(runs) else f", {len(xs)} of {len(runs)} runs"
        return f"{statistics.median(xs):{f}}{unit} ({min(xs):{f}}–{max(xs):{f}}{note})"

    metrics = metric_names(runs[0])
    engines_header, ratios_header = header(metrics)
    print(f"Median (range) over {len(dirs)} runs of each run's median:")
    print()
    print(engines_header)
    for name in names:
        rows = [row for run in runs for row in run if row[0] == name]
        cells = [med([r[k]["median"] for _, r, _ in rows if k in r], ".1f") for k in metrics]
        print(f"| {name} | " + " | ".join(cells) + f" | {med([rss / 2**20 for _, _, rss in rows if rss], '.0f')} |")
    print()
    print(ratios_header)
    per_run = [ratios(run) for run in runs]
    for name in names[1:]:
        cells = [med([r[name][k] for r in per_run if k in r.get(name, {})], ".2f", "x") for k in metrics + ["peak RSS"]]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: compare_inference.py OUT_DIR [OUT_DIR ...]")
    if len(sys.argv) == 2:
        table(sys.argv[1])
    else:
        over_runs(sys.argv[1:])
