"""EasyEdit MEMIT: one batch edit of the first N CounterFact records on CPU, key statistics cached.

Before timing: the statistics EasyEdit's MEMIT reads (layer_stats over Engram's documents, see
easyedit_stats.py) must be on disk; when they are not, `easyedit_stats.py prepare` is run in a child
process (so that this process's peak RSS is the edit's). Timed: clearing EasyEdit's MEMIT caches
(context templates, covariance), generating the context templates (10 of length 10 as Engram's
[[10, 10]], with EasyEdit's generate_fast in its LLaMA branch, since its MEMIT hard-codes 5; see
easyedit_common.llama_generation) and apply_memit_to_model on all N
requests (z search per request, keys, statistics read from its npz cache, the per-layer updates). With
--z-cache the edit may span several sittings (sittings.py: EasyEdit's own v* cache, time summed). Then the
CounterFact ES/PS/NS of every record on the edited model (easyedit_common.counterfact_scores), and the
original weights are written back.

  python easyedit_memit.py --limit 10 --threads 2 --json easyedit-memit.json [--engram-json engram-memit.json]
"""
import json
import os
import time

import easyedit_common as ec
import corpus
from sittings import Sittings


def add_args(ap):
    ec.add_memit_args(ap)
    ap.add_argument("--engram-json", help="engram_runs.py memit output, to compare the statistics with Engram's")
    ap.add_argument("--z-cache", help="folder for EasyEdit's v* cache, so that a run cut short (session end) "
                                      "resumes where it stopped; see sittings.py")


args = ec.parse_args(__doc__, 10, "memit-smollm2.yaml", add_args)
args.stats_dir = args.stats_dir or ec.default_stats_dir(args.corpus, args.max_length)
hp, model, tok, load, ee = ec.setup_memit(args)
import torch  # noqa: E402  (after setup has set the thread count)

memit_main, ls = ee.memit_main, ee.layer_stats
name_for_generation = ec.llama_generation(model) if args.generation == "llama" else model.name_or_path


stats, prepare_seconds = ec.memit_statistics(args, hp, model, tok, ls)
comparison = None
if args.engram_json and os.path.exists(args.engram_json):
    with open(args.engram_json) as f:
        files = json.load(f).get("statistics", {}).get("files") or {}
    comparison = {l: ec.compare_moments(files[str(l)], s) for l, s in stats.items() if str(l) in files}
    print(f"[check] EasyEdit vs Engram E[k kᵀ], {hp.mom2_n_samples} documents: {comparison}", flush=True)
del stats
# A stand-in that would raise if anything inside the timed edit tried to collect statistics.
ec.forbid_collection(ls)

records = ec.load_records(args.data, args.limit)
requests = [dict(ec.request(r), case_id=r.get("case_id", i)) for i, r in enumerate(records)]
sittings = None
if args.z_cache:
    sittings = Sittings(args.z_cache, {
        "data": os.path.abspath(args.data), "records": len(records), "model": os.path.abspath(args.model),
        "easyedit_commit": ec.easyedit_commit(args.tree), "templates": args.templates,
        "generation": args.generation, "hparams": {k: v for k, v in vars(hp).items() if k != "stats_dir"}})
    print(f"[sittings] {sittings.cached_requests()} of {len(requests)} v* already cached in {args.z_cache}", flush=True)
rss_after_load = ec.benchcommon.rss_mib()
pre = [ec.counterfact_scores(model, tok, r) for r in records]
torch.manual_seed(0)
memit_main.CONTEXT_TEMPLATES_CACHE = None
memit_main.COV_CACHE.clear()
if sittings:
    sittings.start()
t0 = time.perf_counter()
templates = ec.memit_context_templates(memit_main, model, tok, args.templates)
t1 = time.perf_counter()
if sittings:
    sittings.templates_made(templates, t1 - t0)
edited, weights_copy = memit_main.apply_memit_to_model(model, tok, requests, hp, copy=False, return_orig_weights=True,
                                                       cache_template=sittings.cache_template if sittings else None)
t2 = time.perf_counter()
earlier = sittings.earlier() if sittings else []
this_sitting_seconds = t2 - t0
edit_seconds = this_sitting_seconds + sum(e["counted_seconds"] for e in earlier)
templates_seconds = t1 - t0  # made once in an uninterrupted run: earlier sittings' are not counted
post = [ec.counterfact_scores(edited, tok, r) for r in records]
peak_rss = max([ec.benchcommon.peak_rss_mib()] + [e["peak_rss_mib"] for e in earlier])
with torch.no_grad():
    for name, value in weights_copy.items():
        memit_main.nethook.get_parameter(model, name)[...] = value


def scores(rows):
    return {k: ec.mean([r[k] for r in rows]) for k in ("efficacy", "paraphrase", "neighborhood")}


out = {
    "engine": "easyedit", "method": "MEMIT", "protocol": "one batch", "records": len(records),
    "data": os.path.abspath(args.data), "model": os.path.abspath(args.model),
    "easyedit_commit": ec.easyedit_commit(args.tree), "hparams": {k: v for k, v in vars(hp).items()},
    "stubbed_modules": ee.stubbed, "load_seconds": load.seconds,
    "edit_seconds": edit_seconds, "memit_seconds": edit_seconds - templates_seconds, "templates_seconds": templates_seconds,
    "seconds_per_request": edit_seconds / len(records),
    "sittings": {"earlier": earlier, "this_sitting_seconds": this_sitting_seconds} if sittings else None,
    "context_templates": {"setting": args.templates, "generation": args.generation,
                          "name_or_path_seen_by_generate_fast": name_for_generation,
                          "count": sum(len(g) for g in templates), "templates": templates},
    "statistics": {"stats_dir": hp.stats_dir, "documents": hp.mom2_n_samples, "dtype": hp.mom2_dtype,
                   "max_length": args.max_length, "corpus_sha256": corpus.sha256(args.corpus),
                   "prepared_now_seconds": prepare_seconds, "compared_with_engram": comparison},
    "scores": {"pre": scores(pre), "post": scores(post)},
    "rss_after_load_mib": rss_after_load, "peak_rss_mib": peak_rss,
    "machine": ec.machine(args.threads), "versions": ec.benchcommon.versions(),
    "per_record": [{"case_id": q["case_id"], "pre": a, "post": b} for q, a, b in zip(requests, pre, post)],
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
ec.write_json(args.json, out)
print(f"EasyEdit MEMIT: {len(records)} requests in one batch in {edit_seconds:.1f} s (templates {templates_seconds:.1f} s"
      f"{f', {len(earlier) + 1} sittings' if earlier else ''}), "
      f"peak RSS {out['peak_rss_mib']:.0f} MiB; pre {out['scores']['pre']} post {out['scores']['post']}")
