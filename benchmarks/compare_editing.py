"""Summarises a run of benchmarks/run_editing.sh: reads the raw JSON in RAW_DIR, writes OUT.json and
prints Markdown tables (ratios are EasyEdit ÷ Engram: above 1 means Engram is faster / smaller).

  python benchmarks/compare_editing.py benchmarks/results/editing benchmarks/results/editing.json
"""
import json
import os
import sys
import time


def load(raw, name):
    path = os.path.join(raw, name)
    return json.load(open(path)) if os.path.exists(path) else None


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


def spread(s):
    return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"


def ratio(a, b):
    return None if not a or not b else a / b


def rx(x):
    return "—" if x is None else f"{x:.2f}x"


def main():
    raw, out_path = sys.argv[1], sys.argv[2]
    run, er, xr = load(raw, "run.json"), load(raw, "engram-rome.json"), load(raw, "easyedit-rome.json")
    ee, xe = load(raw, "engram-eval.json"), load(raw, "easyedit-eval.json")
    score_keys = ["efficacy", "paraphrase", "neighborhood", "rewrite_acc", "rephrase_acc", "locality"]

    def rome_row(r, rss):
        return {"records": r["records"], "edit_seconds": {k: r["edit_seconds"][k] for k in ("median", "min", "max")},
                "peak_rss_mib": rss,
                "scores_post": {k: r["scores"]["post"].get(k) for k in score_keys},
                "scores_pre": {k: r["scores"]["pre"].get(k) for k in score_keys}}

    summary = {
        "what": "ROME single edits on the first N CounterFact dev records and CounterFact evaluation throughput "
                "of the unedited model, Engram vs EasyEdit, same machine, model weights, records and threads",
        "run": run,
        "rome": {"engram": rome_row(er, er["peak_rss_mib"]), "easyedit": rome_row(xr, xr["peak_rss_mib"]),
                 "engram_eval_run_peak_rss_mib": er["eval_run"]["peak_rss_mib"],
                 "easyedit_rome_only_seconds": {k: xr["rome_seconds"][k] for k in ("median", "min", "max")},
                 "easyedit_templates_seconds": {k: xr["templates_seconds"][k] for k in ("median", "min", "max")}},
        "eval": {"engram_batched": ee["batched"]["records_per_s"],
                 "engram_unbatched": ee["unbatched"]["records_per_s"] if ee.get("unbatched") else None,
                 "easyedit": xe["records_per_s"], "records": xe["records"],
                 "engram_forward_batch_flag": ee.get("forward_batch_flag")},
        "ratios_easyedit_over_engram": {
            "rome_seconds_per_edit_median": ratio(xr["edit_seconds"]["median"], er["edit_seconds"]["median"]),
            "rome_peak_rss": ratio(xr["peak_rss_mib"], er["peak_rss_mib"]),
            "eval_time_vs_engram_batched": ratio(ee["batched"]["records_per_s"], xe["records_per_s"]),
            "eval_time_vs_engram_unbatched": ratio(ee["unbatched"]["records_per_s"], xe["records_per_s"])
            if ee.get("unbatched") else None,
        },
        "machine": {"cpu_model": er["machine"]["cpu_model"], "logical_cpus": er["machine"]["logical_cpus"],
                    "OPENBLAS_CORETYPE": er["machine"]["OPENBLAS_CORETYPE"],
                    "threads": run["threads"] if run else er["threads"],
                    "torch_threads": xr["machine"]["torch_threads"],
                    "loadavg_per_step": {"engram_rome": [er["machine"]["loadavg_before"], er["machine"]["loadavg_after"]],
                                         "easyedit_rome_end": xr["machine"]["loadavg"],
                                         "engram_eval": [ee["machine"]["loadavg_before"], ee["machine"]["loadavg_after"]],
                                         "easyedit_eval_end": xe["machine"]["loadavg"]}},
        "easyedit_commit": xr["easyedit_commit"], "easyedit_stubbed_modules": xr["stubbed_modules"],
        "versions": xr["versions"], "engram_binary": er["binary"],
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    n = er["records"]
    print(f"ROME, single edits on the first {n} CounterFact dev records (scores × 100 after the edit; "
          f"NS unedited in brackets):\n")
    print("| tool | s/edit median (min–max) | peak RSS MiB | ES | PS | NS | rewrite acc | rephrase acc | locality |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in (("Engram", er), ("EasyEdit", xr)):
        post, pre = r["scores"]["post"], r["scores"]["pre"]
        print(f"| {name} | {spread(r['edit_seconds'])} | {r['peak_rss_mib']:.0f} | {pct(post.get('efficacy'))} | "
              f"{pct(post.get('paraphrase'))} | {pct(post.get('neighborhood'))} ({pct(pre.get('neighborhood'))}) | "
              f"{pct(post.get('rewrite_acc'))} | {pct(post.get('rephrase_acc'))} | {pct(post.get('locality'))} |")
    pre = er["scores"]["pre"]
    print(f"| unedited (Engram's evaluation) | — | — | {pct(pre.get('efficacy'))} | {pct(pre.get('paraphrase'))} | "
          f"{pct(pre.get('neighborhood'))} | {pct(pre.get('rewrite_acc'))} | {pct(pre.get('rephrase_acc'))} | — |")
    cf = ("efficacy", "paraphrase", "neighborhood")
    same = all(er["scores"]["pre"].get(k) == xr["scores"]["pre"].get(k) for k in cf)
    summary["unedited_counterfact_scores_agree"] = same
    print("\nUnedited ES/PS/NS from the torch scorer used for EasyEdit's edits "
          + ("equal Engram's." if same else f"differ from Engram's: {[xr['scores']['pre'].get(k) for k in cf]}."))
    q = summary["ratios_easyedit_over_engram"]
    print(f"EasyEdit ÷ Engram: time per edit {rx(q['rome_seconds_per_edit_median'])}, "
          f"peak RSS {rx(q['rome_peak_rss'])}. EasyEdit without its context templates: "
          f"{spread(xr['rome_seconds'])} s/edit (templates {spread(xr['templates_seconds'])} s).\n")
    print(f"CounterFact evaluation of the unedited model, {xe['records']} records:\n")
    print("| run | records/s | EasyEdit ÷ Engram time |")
    print("|---|---|---|")
    print(f"| Engram, forward batching (default) | {ee['batched']['records_per_s']:.2f} | {rx(q['eval_time_vs_engram_batched'])} |")
    if ee.get("unbatched"):
        print(f"| Engram, forward batch 1 | {ee['unbatched']['records_per_s']:.2f} | {rx(q['eval_time_vs_engram_unbatched'])} |")
    else:
        print("| Engram, forward batch 1 | not measured (binary has no --forward-batch flag) | — |")
    print(f"| EasyEdit compute_edit_quality | {xe['records_per_s']:.2f} | 1.00x |")
    m = summary["machine"]
    print(f"\n{m['cpu_model']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads "
          f"(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS; torch threads {m['torch_threads']}), "
          f"OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE'] or 'unset'}; load average "
          f"{run['load_before'] if run else '?'} before, {run['load_after'] if run else '?'} after; "
          f"EasyEdit {summary['easyedit_commit']}; torch {xr['versions'].get('torch')}, "
          f"transformers {xr['versions'].get('transformers')}.")

    with open(out_path + ".tmp", "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
