"""EasyEdit ROME on the first N CounterFact records, single-edit protocol (each edit on the original
weights, evaluated, then rolled back, as EasyEdit's editor does without sequential_edit), on CPU.

Per edit it records the seconds of EasyEdit's context-template generation (the cache is cleared before
every edit, so that each edit pays it once, as one `engram edit` process does) and of apply_rome_to_model,
EasyEdit's own scores (compute_edit_quality: rewrite/rephrase token accuracy, neighborhood locality against
the pre-edit outputs) and CounterFact ES/PS/NS of the edited model (easyedit_common.counterfact_scores).

  python easyedit_rome.py --limit 10 --threads 2 --json easyedit-rome.json
"""
import os
import statistics
import time

import numpy as np

import easyedit_common as ec

args, hp, model, tok, load, rome_main, compute_edit_quality, stubbed = ec.setup(__doc__, default_limit=10)
import torch  # noqa: E402  (after ec.setup has set the thread count)

# EasyEdit's template generator takes its LLaMA branch only when the model path says "llama" (see
# easyedit_common.llama_generation); without it this model's templates come out as punctuation.
ec.llama_generation(model)
rss_after_load = ec.benchcommon.rss_mib()
torch.manual_seed(0)

rows = []
for i, record in enumerate(ec.load_records(args.data, args.limit)):
    req = ec.request(record)
    pre = compute_edit_quality(model, hp.model_name, hp, tok, req, hp.device, eval_metric="token_em")
    cf_pre = ec.counterfact_scores(model, tok, record)
    rome_main.CONTEXT_TEMPLATES_CACHE = None
    t0 = time.perf_counter()
    rome_main.get_context_templates(model, tok, hp.context_template_length_params)
    t1 = time.perf_counter()
    edited, weights_copy = rome_main.apply_rome_to_model(model, tok, [req], hp, copy=False, return_orig_weights=True)
    t2 = time.perf_counter()
    post = compute_edit_quality(edited, hp.model_name, hp, tok, req, hp.device, eval_metric="token_em")
    cf_post = ec.counterfact_scores(edited, tok, record)
    with torch.no_grad():
        for name, value in weights_copy.items():
            rome_main.nethook.get_parameter(model, name)[...] = value
    loc = [float(np.mean(np.equal(a, b))) for a, b in
           zip(pre["locality"]["neighborhood_output"], post["locality"]["neighborhood_output"])]
    rows.append({
        "case_id": record.get("case_id", i), "templates_seconds": t1 - t0, "rome_seconds": t2 - t1,
        "edit_seconds": t2 - t0,
        "pre": {"rewrite_acc": ec.mean(pre["rewrite_acc"]), "rephrase_acc": ec.mean(pre["rephrase_acc"]), **cf_pre},
        "post": {"rewrite_acc": ec.mean(post["rewrite_acc"]), "rephrase_acc": ec.mean(post["rephrase_acc"]),
                 "locality": ec.mean(loc), **cf_post},
    })
    print(f"[{i}] {record['prompt']} -> {record['target_new']}: {t2 - t0:.2f} s "
          f"(templates {t1 - t0:.2f} s) post {rows[-1]['post']}", flush=True)


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def scores(phase):
    return {k: ec.mean([r[phase].get(k) for r in rows]) for k in rows[0][phase]}


out = {
    "engine": "easyedit", "method": "ROME", "records": len(rows), "data": os.path.abspath(args.data),
    "model": os.path.abspath(args.model), "easyedit_commit": ec.easyedit_commit(args.tree),
    "hparams": {k: v for k, v in vars(hp).items()}, "stubbed_modules": stubbed,
    "load_seconds": load.seconds,
    "edit_seconds": spread([r["edit_seconds"] for r in rows]),
    "rome_seconds": spread([r["rome_seconds"] for r in rows]),
    "templates_seconds": spread([r["templates_seconds"] for r in rows]),
    "scores": {"pre": scores("pre"), "post": scores("post")},
    "rss_after_load_mib": rss_after_load, "peak_rss_mib": ec.benchcommon.peak_rss_mib(),
    "machine": ec.machine(args.threads), "versions": ec.benchcommon.versions(),
    "per_edit": rows, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
ec.write_json(args.json, out)
print(f"EasyEdit ROME: {len(rows)} edits, median {out['edit_seconds']['median']:.2f} s per edit, "
      f"peak RSS {out['peak_rss_mib']:.0f} MiB; post {out['scores']['post']}")
