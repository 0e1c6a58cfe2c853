"""EasyEdit's key statistics (layer_stats: E[k kᵀ] of the inputs of the MLP down projection) over Engram's
statistics documents (corpus.py: WikiText-2 test paragraphs in Engram's order, at most 256 tokens each).

  prepare:    caches the statistics EasyEdit's MEMIT reads (hparams layers, mom2_n_samples documents,
              mom2_dtype) in stats_dir, untimed; does nothing for layers already cached.
  throughput: cold collection for the hparams layers over the first D documents and over the first one,
              each into a fresh temporary stats_dir, one layer_stats call per layer as EasyEdit's MEMIT
              makes them (get_cov); tokens/s = (tokens(D) - tokens(1)) / (seconds(D) - seconds(1)).
              Precision: the hparams' mom2_dtype (float64, as Engram), then each --also-precision (default
              float32, EasyEdit's LLaMA setting). With --engram-json (from `engram_runs.py stats`),
              compares the mom2_dtype E[k kᵀ] with Engram's files.

  python easyedit_stats.py prepare --threads 2
  python easyedit_stats.py throughput --documents 200 --threads 2 --json easyedit-stats.json
"""
import json
import os
import shutil
import sys
import tempfile
import time

import easyedit_common as ec
import corpus


def add_args(ap):
    ap.add_argument("what", choices=["prepare", "throughput"])
    ap.add_argument("--documents", type=int, default=200, help="throughput: documents D")
    ap.add_argument("--corpus", default=corpus.DEFAULT_PATH)
    ap.add_argument("--max-length", type=int, default=ec.MAX_LENGTH)
    ap.add_argument("--stats-dir", help="prepare: EasyEdit stats_dir (default: per corpus under $ENGRAM_HOME/bench)")
    ap.add_argument("--engram-json", help="throughput: engram_runs.py stats output, to compare the statistics")
    ap.add_argument("--also-precision", default="float32",
                    help="throughput: further layer_stats precisions to time (comma-separated; '' for none; "
                         "float32 is what EasyEdit's LLaMA MEMIT file sets)")


args = ec.parse_args(__doc__, 10, "memit-smollm2.yaml", add_args)
args.stats_dir = args.stats_dir or ec.default_stats_dir(args.corpus, args.max_length)
hp, model, tok, load, ee = ec.setup_memit(args)
ls = ee.layer_stats
docs = corpus.documents(args.corpus)


def collect(n, stats_dir, precision):
    """layer_stats for every MEMIT layer over the first n documents; returns ({layer: stat}, {layer: s})."""
    ec.use_corpus(ls, docs[:n], args.max_length)
    stats, seconds = {}, {}
    for layer in hp.layers:
        t0 = time.perf_counter()
        stats[layer] = ls.layer_stats(model, tok, hp.rewrite_module_tmp.format(layer), stats_dir, hp.mom2_dataset,
                                      to_collect=["mom2"], sample_size=n, precision=precision, hparams=hp)
        seconds[layer] = time.perf_counter() - t0
    return stats, seconds


if args.what == "prepare":
    stats, seconds = collect(hp.mom2_n_samples, args.stats_dir, hp.mom2_dtype)
    print(f"EasyEdit statistics for layers {hp.layers}, {hp.mom2_n_samples} documents, {hp.mom2_dtype}: "
          f"{sum(seconds.values()):.1f} s (0 when cached) in {args.stats_dir}", flush=True)
    sys.exit(0)


def measure(precision):
    runs = {}
    for n in (1, args.documents):
        tmp = tempfile.mkdtemp(prefix="easyedit-stats-")
        try:
            stats, seconds = collect(n, tmp, precision)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        runs[n] = {"documents": n, "tokens": ec.count_tokens(tok, docs[:n], args.max_length),
                   "tokens_counted_by_easyedit": {str(l): int(s.mom2.count) for l, s in stats.items()},
                   "seconds": sum(seconds.values()), "seconds_per_layer": {str(l): v for l, v in seconds.items()}}
        print(f"[{precision}, {n} documents] {runs[n]['tokens']} tokens, {runs[n]['seconds']:.2f} s "
              f"({runs[n]['tokens'] / runs[n]['seconds']:.0f} tokens/s for {len(hp.layers)} layers)", flush=True)
    big, one = runs[args.documents], runs[1]
    return stats, {"precision": precision, "tokens": big["tokens"], "marginal_seconds": big["seconds"] - one["seconds"],
                   "tokens_per_s": (big["tokens"] - one["tokens"]) / (big["seconds"] - one["seconds"]),
                   "end_to_end_tokens_per_s": big["tokens"] / big["seconds"], "runs": {str(k): v for k, v in runs.items()}}


if args.documents < 2:
    raise SystemExit("--documents must be at least 2")
stats, main_run = measure(hp.mom2_dtype)
others = {p: measure(p)[1] for p in args.also_precision.split(",") if p and p != hp.mom2_dtype}
comparison = None
if args.engram_json and os.path.exists(args.engram_json):
    with open(args.engram_json) as f:
        files = json.load(f).get("kept_files") or {}
    comparison = {l: ec.compare_moments(files[str(l)], s) for l, s in stats.items() if str(l) in files}
    print(f"[check] EasyEdit vs Engram E[k kᵀ] over {args.documents} documents: {comparison}", flush=True)
out = {
    "engine": "easyedit", "what": "key statistics collection, cold, one layer_stats call per layer",
    "layers": hp.layers, "max_length": args.max_length,
    "corpus": os.path.abspath(args.corpus), "corpus_sha256": corpus.sha256(args.corpus),
    "documents": args.documents, **main_run, "other_precisions": others, "compared_with_engram": comparison,
    "batch_tokens": "EasyEdit default (3 x max_position_embeddings)", "loader_workers": 2,
    "load_seconds": load.seconds, "easyedit_commit": ec.easyedit_commit(args.tree), "stubbed_modules": ee.stubbed,
    "model": os.path.abspath(args.model), "peak_rss_mib": ec.benchcommon.peak_rss_mib(),
    "machine": ec.machine(args.threads), "versions": ec.benchcommon.versions(),
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
ec.write_json(args.json, out)
print(f"EasyEdit statistics: {out['tokens_per_s']:.0f} tokens/s ({len(hp.layers)} layers, {args.documents} documents, "
      f"{hp.mom2_dtype})" + "".join(f"; {p}: {o['tokens_per_s']:.0f} tokens/s" for p, o in others.items()))
