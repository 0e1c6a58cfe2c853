"""Evaluation throughput of EasyEdit: its compute_edit_quality (the per-record evaluation its editor runs
before and after each edit: rewrite and rephrase token accuracy, neighborhood outputs) on the unedited
model over the first N CounterFact records, after one untimed warm-up record.

  python easyedit_eval.py --limit 50 --threads 2 --json easyedit-eval.json
"""
import os
import time

import easyedit_common as ec

args, hp, model, tok, load, _, compute_edit_quality, stubbed = ec.setup(__doc__, default_limit=50)
records = [ec.request(r) for r in ec.load_records(args.data, args.limit)]


def evaluate(req):
    return compute_edit_quality(model, hp.model_name, hp, tok, req, hp.device, eval_metric="token_em")


evaluate(records[0])  # warm-up
with ec.benchcommon.Timer() as run:
    results = [evaluate(r) for r in records]
out = {
    "engine": "easyedit", "what": "compute_edit_quality on the unedited model", "records": len(records),
    "seconds": run.seconds, "records_per_s": len(records) / run.seconds, "load_seconds": load.seconds,
    "scores": {"rewrite_acc": ec.mean([ec.mean(r["rewrite_acc"]) for r in results]),
               "rephrase_acc": ec.mean([ec.mean(r["rephrase_acc"]) for r in results])},
    "easyedit_commit": ec.easyedit_commit(args.tree), "stubbed_modules": stubbed,
    "data": os.path.abspath(args.data), "model": os.path.abspath(args.model),
    "peak_rss_mib": ec.benchcommon.peak_rss_mib(), "machine": ec.machine(args.threads),
    "versions": ec.benchcommon.versions(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
ec.write_json(args.json, out)
print(f"EasyEdit evaluation: {len(records)} records in {run.seconds:.1f} s = {out['records_per_s']:.2f} records/s")
