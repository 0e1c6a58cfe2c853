#!/usr/bin/env python3
"""Reads the JSON written by EngramBench and the peer scripts and prints a Markdown table of medians,
spreads and ratios (engine ÷ Engram, so a ratio above 1 means the peer is faster)."""
import json, os, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def rates(d):
    if "results_tokens_per_second" in d:  # EngramBench
        return d["results_tokens_per_second"], d.get("peak_rss_bytes")
    res = {k: v["tok_per_s"] for k, v in d["results"].items()}
    return res, (d.get("peak_rss_mib") or 0) * 2**20 or None

out = sys.argv[1]
engram, engram_rss = rates(load(os.path.join(out, "engram.json")))
rows = [("Engram", engram, engram_rss)]
for name, file in [("llama.cpp", "llamacpp.json"), ("transformers", "transformers.json")]:
    p = os.path.join(out, file)
    if os.path.exists(p):
        r, rss = rates(load(p))
        rows.append((name, r, rss))
print("| engine | pp128 tok/s | pp512 tok/s | tg128 tok/s | peak RSS MiB |")
print("|---|---|---|---|---|")
for name, r, rss in rows:
    cells = []
    for k in ["pp128", "pp512", "tg128"]:
        v = r.get(k)
        cells.append("—" if v is None else f"{v['median']:.1f} ({v['min']:.1f}–{v['max']:.1f})")
    print(f"| {name} | " + " | ".join(cells) + f" | {rss / 2**20:.0f} |" if rss else " | — |")
print()
print("| Engram ÷ peer | pp128 | pp512 | tg128 | peak RSS |")
print("|---|---|---|---|---|")
for name, r, rss in rows[1:]:
    cells = [f"{engram[k]['median'] / r[k]['median']:.2f}x" if k in r and k in engram else "—" for k in ["pp128", "pp512", "tg128"]]
    mem = f"{engram_rss / rss:.2f}x" if rss and engram_rss else "—"
    print(f"| {name} | " + " | ".join(cells) + f" | {mem} |")
