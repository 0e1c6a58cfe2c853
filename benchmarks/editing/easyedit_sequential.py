"""EasyEdit's MEMIT under sequential editing: the first N CounterFact records edited B at a time, each batch
applied to the model the earlier batches left (as EasyEdit's editor does with sequential_edit: no rollback;
MEMIT's get_cov keeps the unedited model's statistics in its cache). Each record is scored right after its
own batch ("post") and every record after the last batch ("final"), by easyedit_common.counterfact_nlls.

This is a check of the reference implementation's behaviour, not a speed comparison: it asks whether
EasyEdit's MEMIT wears down over 6 batches of 50 on this model, next to
`engram eval --method memit|alphaedit --protocol sequential --batch-size 50` on the same records and
hyper-parameters (memit-smollm2.yaml; give both tools the same mom2_n_samples). The JSON has, per record,
the keys that results/paired_difference.py reads (counterfact.efficacy_score, ..._magnitude, ×1).

--state DIR keeps the edited weights and the scores after each batch, so that a run stopped between
batches (session end) resumes at the next batch; the folder pins the settings and refuses others.

  python easyedit_sequential.py --limit 300 --batch-size 50 --threads 2 --json easyedit-memit-seq50.json [--state DIR]
"""
import json
import math
import os
import time

import easyedit_common as ec
import corpus


def add_args(ap):
    ec.add_memit_args(ap)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--state", help="folder for the weights and scores after each batch (resumable run)")


args = ec.parse_args(__doc__, 300, "memit-smollm2.yaml", add_args)
if args.batch_size < 1:
    raise SystemExit("--batch-size must be at least 1")
args.stats_dir = args.stats_dir or ec.default_stats_dir(args.corpus, args.max_length)
hp, model, tok, load, ee = ec.setup_memit(args)
import torch  # noqa: E402  (after setup has set the thread count)

memit_main = ee.memit_main
if args.generation == "llama":
    ec.llama_generation(model)
stats, prepare_seconds = ec.memit_statistics(args, hp, model, tok, ee.layer_stats)
del stats

records = ec.load_records(args.data, args.limit)
requests = [dict(ec.request(r), case_id=r.get("case_id", i)) for i, r in enumerate(records)]
batches = [list(range(i, min(i + args.batch_size, len(records)))) for i in range(0, len(records), args.batch_size)]
settings = {"data": os.path.abspath(args.data), "records": len(records), "batch_size": args.batch_size,
            "model": os.path.abspath(args.model), "easyedit_commit": ec.easyedit_commit(args.tree),
            "templates": args.templates, "generation": args.generation,
            "hparams": {k: v for k, v in vars(hp).items() if k != "stats_dir"}}


def row(record, nlls):
    """One record's scores in the names of `engram eval --json` (fractions, as there): the scorer's 0/1
    scores, and the magnitudes, differences of exp(−NLL) with the new target first (the true one first for
    the neighborhood prompt)."""
    scores = ec.counterfact_scores(model, tok, record, nlls)
    out = {"nll": nlls}
    for name, (new, true) in nlls.items():
        sign = -1 if name == "neighborhood" else 1
        out[f"counterfact.{name}_score"] = scores[name]
        out[f"counterfact.{name}_magnitude"] = sign * (math.exp(-new) - math.exp(-true))
    return out


def score(indices):
    return {i: row(records[i], ec.counterfact_nlls(model, tok, records[i])) for i in indices}


# --- resumable state: the rewritten weights and the scores so far, after each batch ----------------------
state = {"pre": None, "post": {}, "done": 0, "batches": []}
weights_path = state_path = None
if args.state:
    os.makedirs(args.state, exist_ok=True)
    pinned = os.path.join(args.state, "settings.json")
    if os.path.exists(pinned):
        with open(pinned) as f:
            if json.load(f) != json.loads(json.dumps(settings)):
                raise SystemExit(f"{pinned}: this state was made with other settings; use another --state folder")
    else:
        ec.write_json(pinned, settings)
    state_path, weights_path = os.path.join(args.state, "state.json"), os.path.join(args.state, "weights.pt")
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        state["post"] = {int(k): v for k, v in state["post"].items()}
        state["pre"] = {int(k): v for k, v in state["pre"].items()}
        print(f"[state] resuming after {state['done']} of {len(batches)} batches", flush=True)

# The context templates are sampled from the unedited model (seeded), once for all batches, as EasyEdit's
# MEMIT caches them for the process; a resumed run samples them again before loading the edited weights.
torch.manual_seed(0)
memit_main.CONTEXT_TEMPLATES_CACHE = None
memit_main.COV_CACHE.clear()
templates = json.loads(json.dumps(ec.memit_context_templates(memit_main, model, tok, args.templates)))
if state.get("templates", templates) != templates:
    raise SystemExit(f"{state_path}: this run sampled other context templates than the run it would resume")
state["templates"] = templates
if state["done"]:
    with torch.no_grad():
        for name, value in torch.load(weights_path).items():
            memit_main.nethook.get_parameter(model, name)[...] = value


def save_state(edited_names):
    if not args.state:
        return
    weights = {n: memit_main.nethook.get_parameter(model, n).detach().clone() for n in edited_names}
    torch.save(weights, weights_path + ".tmp")
    os.replace(weights_path + ".tmp", weights_path)
    ec.write_json(state_path, state)


if state["pre"] is None:
    state["pre"] = score(range(len(records)))
    save_state([])
edited_names = [hp.rewrite_module_tmp.format(l) + ".weight" for l in hp.layers]
for b in range(state["done"], len(batches)):
    t0 = time.perf_counter()
    memit_main.apply_memit_to_model(model, tok, [requests[i] for i in batches[b]], hp, copy=False)
    seconds = time.perf_counter() - t0
    state["post"].update(score(batches[b]))
    state["done"] = b + 1
    state["batches"].append({"batch": b, "records": len(batches[b]), "edit_seconds": seconds,
                             "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    save_state(edited_names)
    post = [state["post"][i]["counterfact.efficacy_score"] for i in batches[b]]
    print(f"[batch {b + 1}/{len(batches)}] {len(batches[b])} edits in {seconds:.0f} s, efficacy right after "
          f"{100 * sum(post) / len(post):.1f}", flush=True)
final = score(range(len(records)))

SCORES = ["counterfact.efficacy_score", "counterfact.paraphrase_score", "counterfact.neighborhood_score",
          "counterfact.efficacy_magnitude", "counterfact.paraphrase_magnitude", "counterfact.neighborhood_magnitude"]


def means(rows):
    return {k: 100 * ec.mean([r[k] for r in rows]) for k in SCORES}


out = {
    "format": "easyedit-sequential-1", "engine": "easyedit", "method": "MEMIT",
    "protocol": f"sequential, {len(batches)} batches of up to {args.batch_size}",
    "records": len(records), "data": os.path.abspath(args.data), "model": os.path.abspath(args.model),
    "easyedit_commit": ec.easyedit_commit(args.tree), "hparams": {k: v for k, v in vars(hp).items()},
    "stubbed_modules": ee.stubbed,
    "context_templates": {"setting": args.templates, "generation": args.generation,
                          "count": sum(len(g) for g in templates), "templates": templates},
    "statistics": {"stats_dir": hp.stats_dir, "documents": hp.mom2_n_samples, "dtype": hp.mom2_dtype,
                   "max_length": args.max_length, "corpus_sha256": corpus.sha256(args.corpus),
                   "prepared_now_seconds": prepare_seconds},
    "batches": state["batches"],
    "scores_x100": {"pre": means(state["pre"].values()), "post": means(state["post"].values()),
                    "final": means(final.values())},
    "machine": ec.machine(args.threads), "versions": ec.benchcommon.versions(),
    "per_record": [{"case_id": requests[i]["case_id"], "pre": state["pre"][i], "post": state["post"][i],
                    "final": final[i]} for i in range(len(records))],
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
ec.write_json(args.json, out)
s = out["scores_x100"]
print("EasyEdit MEMIT sequential: " + "; ".join(
    f"{t} ES {s[t]['counterfact.efficacy_score']:.2f} PS {s[t]['counterfact.paraphrase_score']:.2f} "
    f"NS {s[t]['counterfact.neighborhood_score']:.2f}" for t in ("pre", "post", "final")))
