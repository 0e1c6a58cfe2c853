"""Summarises a run of benchmarks/run_editing.sh: reads the raw JSON in RAW_DIR, writes OUT.json and
prints Markdown tables (ratios are EasyEdit ÷ Engram: above 1 means Engram is faster / smaller).
Each part (ROME, evaluation, MEMIT batch, statistics) is summarised when both tools' files are present.

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


def table_header(*columns):
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def rome_part(summary, er, xr):
    score_keys = ["efficacy", "paraphrase", "neighborhood", "rewrite_acc", "rephrase_acc", "locality"]

    def rome_row(r, rss):
        return {"records": r["records"], "edit_seconds": {k: r["edit_seconds"][k] for k in ("median", "min", "max")},
                "peak_rss_mib": rss,
                "scores_post": {k: r["scores"]["post"].get(k) for k in score_keys},
                "scores_pre": {k: r["scores"]["pre"].get(k) for k in score_keys}}

    summary["rome"] = {"engram": rome_row(er, er["peak_rss_mib"]), "easyedit": rome_row(xr, xr["peak_rss_mib"]),
                       "engram_eval_run_peak_rss_mib": er["eval_run"]["peak_rss_mib"],
                       "easyedit_rome_only_seconds": {k: xr["rome_seconds"][k] for k in ("median", "min", "max")},
                       "easyedit_templates_seconds": {k: xr["templates_seconds"][k] for k in ("median", "min", "max")}}
    # Engram's timed edits read stored context templates (runs since the template store) and EasyEdit's
    # rome_seconds exclude its template sampling: that pair is like for like. Older Engram runs sampled
    # templates in every edit and compare with EasyEdit's edit_seconds.
    stored = "cold_edit" in er
    summary["rome"]["templates_in_timed_edits"] = "neither tool" if stored else "both tools"
    summary["ratios_easyedit_over_engram"].update({
        "rome_seconds_per_edit_median": ratio(xr["rome_seconds" if stored else "edit_seconds"]["median"],
                                              er["edit_seconds"]["median"]),
        "rome_peak_rss": ratio(xr["peak_rss_mib"], er["peak_rss_mib"]),
    })
    if stored:
        summary["rome"]["engram_cold_edit_seconds"] = er["cold_edit"]["edit_seconds"]
        summary["ratios_easyedit_over_engram"]["rome_seconds_with_templates_first_record"] = ratio(
            xr["per_edit"][0]["edit_seconds"], er["cold_edit"]["edit_seconds"])
    n = er["records"]
    print(f"ROME, single edits on the first {n} CounterFact dev records (scores × 100 after the edit; "
          f"NS unedited in brackets):\n")
    table_header("tool", "s/edit median (min–max)", "peak RSS MiB", "ES", "PS", "NS", "rewrite acc", "rephrase acc", "locality")
    for name, r in (("Engram", er), ("EasyEdit", xr)):
        post, pre = r["scores"]["post"], r["scores"]["pre"]
        print(f"| {name} | {spread(r['edit_seconds'])} | {r['peak_rss_mib']:.0f} | {pct(post.get('efficacy'))} | "
              f"{pct(post.get('paraphrase'))} | {pct(post.get('neighborhood'))} ({pct(pre.get('neighborhood'))}) | "
              f"{pct(post.get('rewrite_acc'))} | {pct(post.get('rephrase_acc'))} | {pct(post.get('locality'))} |")
    pre = er["scores"]["pre"]
    print(f"| unedited (Engram's evaluation) | — | — | {pct(pre.get('efficacy'))} | {pct(pre.get('paraphrase'))} | "
          f"{pct(pre.get('neighborhood'))} | {pct(pre.get('rewrite_acc'))} | {pct(pre.get('rephrase_acc'))} | — |")
    cf = ("efficacy", "paraphrase", "neighborhood")
    same = all(abs(er["scores"]["pre"].get(k, -1) - xr["scores"]["pre"].get(k, -2)) < 1e-5 for k in cf)  # Engram writes 6 digits
    summary["unedited_counterfact_scores_agree"] = same
    print("\nUnedited ES/PS/NS from the torch scorer used for EasyEdit's edits "
          + ("equal Engram's." if same else f"differ from Engram's: {[xr['scores']['pre'].get(k) for k in cf]}."))
    q = summary["ratios_easyedit_over_engram"]
    print(f"EasyEdit without its context templates: {spread(xr['rome_seconds'])} s/edit "
          f"(templates {spread(xr['templates_seconds'])} s). EasyEdit ÷ Engram: time per edit "
          f"{rx(q['rome_seconds_per_edit_median'])} (context templates sampled in the timed edits of "
          f"{summary['rome']['templates_in_timed_edits']}), peak RSS {rx(q['rome_peak_rss'])}.")
    if stored:
        print(f"First record with template sampling in both: Engram {er['cold_edit']['edit_seconds']:.2f} s, "
              f"EasyEdit {xr['per_edit'][0]['edit_seconds']:.2f} s "
              f"({rx(q['rome_seconds_with_templates_first_record'])}).")
    print()


def eval_part(summary, ee, xe):
    summary["eval"] = {"engram_batched": ee["batched"]["records_per_s"],
                       "engram_unbatched": ee["unbatched"]["records_per_s"] if ee.get("unbatched") else None,
                       "easyedit": xe["records_per_s"], "records": xe["records"],
                       "engram_forward_batch_flag": ee.get("forward_batch_flag")}
    q = summary["ratios_easyedit_over_engram"]
    q.update({
        "eval_time_vs_engram_batched": ratio(ee["batched"]["records_per_s"], xe["records_per_s"]),
        "eval_time_vs_engram_unbatched": ratio(ee["unbatched"]["records_per_s"], xe["records_per_s"])
        if ee.get("unbatched") else None,
    })
    print(f"CounterFact evaluation of the unedited model, {xe['records']} records:\n")
    table_header("run", "records/s", "EasyEdit ÷ Engram time")
    print(f"| Engram, forward batching (default) | {ee['batched']['records_per_s']:.2f} | {rx(q['eval_time_vs_engram_batched'])} |")
    if ee.get("unbatched"):
        print(f"| Engram, forward batch 1 | {ee['unbatched']['records_per_s']:.2f} | {rx(q['eval_time_vs_engram_unbatched'])} |")
    else:
        print("| Engram, forward batch 1 | not measured (binary has no --forward-batch flag) | — |")
    print(f"| EasyEdit compute_edit_quality | {xe['records_per_s']:.2f} | 1.00x |")


def main():
    raw, out_path = sys.argv[1], sys.argv[2]
    run, er, xr = load(raw, "run.json"), load(raw, "engram-rome.json"), load(raw, "easyedit-rome.json")
    ee, xe = load(raw, "engram-eval.json"), load(raw, "easyedit-eval.json")
    em, xm = load(raw, "engram-memit.json"), load(raw, "easyedit-memit.json")
    es, xs = load(raw, "engram-stats.json"), load(raw, "easyedit-stats.json")
    summary = {"what": "ROME single edits and a MEMIT batch edit on the first CounterFact dev records, CounterFact "
                       "evaluation throughput of the unedited model and key-statistics collection throughput, "
                       "Engram vs EasyEdit, same machine, model weights, records and threads",
               "run": run}
    summary["ratios_easyedit_over_engram"] = {}
    pairs = [(e, x) for e, x in ((er, xr), (ee, xe), (em, xm), (es, xs)) if e and x]
    if not pairs:
        raise SystemExit(f"no pair of Engram and EasyEdit results in {raw}")
    for part, e, x in ((rome_part, er, xr), (eval_part, ee, xe), (memit_batch, em, xm), (statistics_part, es, xs)):
        if e and x:
            part(summary, e, x)
    summary["ratios_easyedit_over_engram"] = summary.pop("ratios_easyedit_over_engram")  # after the parts
    e0, x0 = pairs[0]
    m = summary["machine"] = {
        "cpu_model": e0["machine"]["cpu_model"], "logical_cpus": e0["machine"]["logical_cpus"],
        "OPENBLAS_CORETYPE": e0["machine"]["OPENBLAS_CORETYPE"], "openblas": e0["machine"].get("openblas"),
        "openblas_core_chosen_by_engram": e0["machine"].get("openblas_core_chosen_by_engram"),
        "threads": run["threads"] if run else e0["threads"], "torch_threads": x0["machine"]["torch_threads"],
        "loadavg_per_step": {}}
    for name, e, x in (("rome", er, xr), ("eval", ee, xe), ("memit", em, xm), ("stats", es, xs)):
        if e and x:
            m["loadavg_per_step"][f"engram_{name}"] = [e["machine"]["loadavg_before"], e["machine"]["loadavg_after"]]
            m["loadavg_per_step"][f"easyedit_{name}_end"] = x["machine"]["loadavg"]
    summary.update({"easyedit_commit": x0["easyedit_commit"], "easyedit_stubbed_modules": x0["stubbed_modules"],
                    "versions": x0["versions"], "engram_binary": e0["binary"],
                    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(f"\n{m['cpu_model']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads "
          f"(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS; torch threads {m['torch_threads']}), "
          f"OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE'] or 'unset'}"
          f"{' (engram chose ' + m['openblas_core_chosen_by_engram'] + ')' if m['openblas_core_chosen_by_engram'] else ''}; load average "
          f"{run['load_before'] if run else '?'} before, {run['load_after'] if run else '?'} after; "
          f"EasyEdit {summary['easyedit_commit']}; torch {x0['versions'].get('torch')}, "
          f"transformers {x0['versions'].get('transformers')}.")

    with open(out_path + ".tmp", "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")
    os.replace(out_path + ".tmp", out_path)


def memit_batch(summary, em, xm):
    cf = ("efficacy", "paraphrase", "neighborhood")

    def row(r):
        return {"records": r["records"], "edit_seconds": r["edit_seconds"],
                "seconds_per_request": r["edit_seconds"] / r["records"], "peak_rss_mib": r["peak_rss_mib"],
                "scores_pre": {k: r["scores"]["pre"].get(k) for k in cf},
                "scores_post": {k: r["scores"]["post"].get(k) for k in cf}}

    check = xm["statistics"].get("compared_with_engram") or {}
    summary["memit_batch"] = {
        "engram": row(em), "easyedit": row(xm), "statistics_documents": em["statistics"]["documents"],
        "engram_eval_run_peak_rss_mib": em["eval_run"]["peak_rss_mib"],
        "easyedit_memit_only_seconds": xm["memit_seconds"], "easyedit_templates_seconds": xm["templates_seconds"],
        "easyedit_context_templates": {k: xm["context_templates"].get(k) for k in ("setting", "generation", "count")},
        "statistics_max_relative_difference": max((c["relative_frobenius_difference"] for c in check.values()),
                                                  default=None)}
    q = summary["ratios_easyedit_over_engram"]
    q["memit_batch_seconds"] = ratio(xm["edit_seconds"], em["edit_seconds"])
    q["memit_batch_peak_rss"] = ratio(xm["peak_rss_mib"], em["peak_rss_mib"])
    n = em["records"]
    print(f"\nMEMIT, one batch edit of the first {n} CounterFact dev records, key statistics cached "
          f"({em['statistics']['documents']} documents; scores × 100 before → after the edit):\n")
    table_header("tool", "s per batch", "s per request", "peak RSS MiB", "ES", "PS", "NS")
    for name, r in (("Engram", em), ("EasyEdit", xm)):
        pre, post = r["scores"]["pre"], r["scores"]["post"]
        print(f"| {name} | {r['edit_seconds']:.1f} | {r['edit_seconds'] / r['records']:.2f} | {r['peak_rss_mib']:.0f} | "
              + " | ".join(f"{pct(pre.get(k))} → {pct(post.get(k))}" for k in cf) + " |")
    d = summary["memit_batch"]["statistics_max_relative_difference"]
    print(f"\nEasyEdit ÷ Engram: time {rx(q['memit_batch_seconds'])}, peak RSS {rx(q['memit_batch_peak_rss'])}. "
          f"EasyEdit without its context templates: {xm['memit_seconds']:.1f} s (templates {xm['templates_seconds']:.1f} s). "
          + (f"Their E[k kᵀ] differ by at most {d:.1e} (relative Frobenius)." if d is not None else ""))


def statistics_part(summary, es, xs):
    others = xs.get("other_precisions") or {}
    summary["statistics"] = {
        "layers": es["layers"], "documents": es["documents"], "tokens": es["tokens"],
        "engram": {"tokens_per_s": es["tokens_per_s"], "end_to_end_tokens_per_s": es["end_to_end_tokens_per_s"],
                   "marginal_seconds": es["marginal_seconds"], "precision": es["precision"],
                   "peak_rss_mib": es["peak_rss_mib"]},
        "easyedit": {"tokens_per_s": xs["tokens_per_s"], "end_to_end_tokens_per_s": xs["end_to_end_tokens_per_s"],
                     "marginal_seconds": xs["marginal_seconds"], "precision": xs["precision"]},
        "easyedit_other_precisions": {p: {"tokens_per_s": o["tokens_per_s"], "marginal_seconds": o["marginal_seconds"]}
                                      for p, o in others.items()},
        "tokens_agree": es["tokens"] == xs["tokens"],
        "statistics_max_relative_difference": max((c["relative_frobenius_difference"]
                                                   for c in (xs.get("compared_with_engram") or {}).values()), default=None)}
    q = summary["ratios_easyedit_over_engram"]
    q["statistics_time"] = ratio(es["tokens_per_s"], xs["tokens_per_s"])
    for p, o in others.items():
        q[f"statistics_time_easyedit_{p}"] = ratio(es["tokens_per_s"], o["tokens_per_s"])
    print(f"\nKey statistics E[k kᵀ], cold, layers {','.join(map(str, es['layers']))}, first {es['documents']} "
          f"documents ({es['tokens']} tokens, at most 256 per document):\n")
    table_header("run", "accumulation", "tokens/s", "EasyEdit ÷ Engram time")
    print(f"| Engram `engram stats` (one pass for all layers) | {es['precision']} | {es['tokens_per_s']:.0f} | 1.00x |")
    print(f"| EasyEdit layer_stats (one pass per layer) | {xs['precision']} | {xs['tokens_per_s']:.0f} | "
          f"{rx(q['statistics_time'])} |")
    for p, o in others.items():
        print(f"| EasyEdit layer_stats (one pass per layer) | {p} | {o['tokens_per_s']:.0f} | "
              f"{rx(q[f'statistics_time_easyedit_{p}'])} |")
    d = summary["statistics"]["statistics_max_relative_difference"]
    print("\nTokens/s = (tokens(D) − tokens(1)) / (seconds(D) − seconds(1)); token counts "
          + ("agree" if summary["statistics"]["tokens_agree"] else f"differ ({es['tokens']} vs {xs['tokens']})")
          + (f"; E[k kᵀ] differ by at most {d:.1e} (relative Frobenius)." if d is not None else "."))


if __name__ == "__main__":
    main()
