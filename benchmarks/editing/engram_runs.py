"""Engram's side of the editing benchmark: runs the engram binary and times it.

  rome: one `engram edit --method rome` process per record (the CLI's own timer covers the edit alone:
        context templates, k*, v* search, rank-one update; model load and the before/after table are
        outside it), peak RSS of each process from wait4, in a fresh ENGRAM_HOME whose template store an
        untimed first edit fills (its time is kept as cold_edit); then `engram eval --method rome --limit N`
        for the CounterFact and KnowEdit scores of the same single edits (and its peak RSS).
  eval: `engram eval --method none` on N records and on 1 record, default forward batching and (if the
        binary has the flag) forward batch 1; records/s = (N - 1) / (wall(N) - wall(1)), so model load
        and the first record's warm-up cancel.

  memit: `engram stats` for the MEMIT layers and mom2_n_samples documents first (untimed; cached after its
        first run), then one `engram edit --method memit` process on a file with the first N records: the
        CLI's timer (`MEMIT: N request(s) in X s`) covers context templates, reading the cached statistics,
        the z searches and the per-layer updates; peak RSS of that process; then `engram eval --method memit
        --protocol batch --batch-size N --limit N` for the CounterFact scores of the same batch edit.
  stats: cold `engram stats --layers <MEMIT layers> --documents D` and `--documents 1`, each with ENGRAM_HOME
        a fresh folder holding only a `models` link (so nothing is cached); tokens/s = (tokens(D) -
        tokens(1)) / (wall(D) - wall(1)), so process start, model load and writing the files cancel.

  python engram_runs.py rome --engram BIN --limit 10 --threads 2 --json engram-rome.json
  python engram_runs.py eval --engram BIN --limit 50 --threads 2 --json engram-eval.json
  python engram_runs.py memit --engram BIN --limit 10 --threads 2 --json engram-memit.json
  python engram_runs.py stats --engram BIN --documents 200 --threads 2 --json engram-stats.json
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import benchcommon  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


# OpenBLAS cores that engram announced it chose (it runs itself again with OPENBLAS_CORETYPE set when that
# is unset and the system OpenBLAS falls back to a generic core on this CPU).
CHOSEN_CORES = set()


def run(cmd, env):
    """Runs cmd; returns (stdout, stderr, wall seconds, peak RSS MiB of that process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{stderr[-2000:]}")
    CHOSEN_CORES.update(re.findall(r"OpenBLAS does not know this CPU; running its (\S+) core", stderr))
    return stdout, stderr, wall, usage.ru_maxrss / 1024


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def fresh_home(keep=("models",)):
    """An ENGRAM_HOME with links to these folders of the real one only (by default the installed models:
    no cached statistics or stored templates)."""
    real = os.environ.get("ENGRAM_HOME") or os.path.expanduser("~/.cache/engram")
    home = tempfile.mkdtemp(prefix="engram-bench-home-")
    for name in keep:
        os.makedirs(os.path.join(real, name), exist_ok=True)
        os.symlink(os.path.join(real, name), os.path.join(home, name))
    return home


def rome(args, env):
    with open(args.data) as f:
        records = json.load(f)[:args.limit]
    edits, tmp = [], tempfile.mkdtemp(prefix="engram-rome-")
    # A fresh home: the first edit samples the context templates inside its timer ("cold") and stores
    # them; the timed edits read them, as EasyEdit's edits after its first reuse its in-process cache.
    # Compare them with EasyEdit's rome_seconds (its template sampling excluded).
    env = dict(env, ENGRAM_HOME=fresh_home())

    def edit(i, record):
        path = os.path.join(tmp, f"record-{i}.json")
        with open(path, "w") as f:
            json.dump([record], f)
        _, stderr, wall, rss = run([args.engram, "edit", args.model, "--edits", path, "--method", "rome",
                                    "--hparams", args.hparams], env)
        m = re.search(r"ROME: 1 request\(s\) in [0-9.]+ s \(([0-9.]+) s per request\)", stderr)
        if not m:
            raise SystemExit(f"no ROME timing line in:\n{stderr[-2000:]}")
        return {"case_id": record.get("case_id", i), "edit_seconds": float(m.group(1)),
                "process_seconds": wall, "peak_rss_mib": rss}

    cold = edit(0, records[0])
    print(f"[cold] {records[0]['prompt']} -> {records[0]['target_new']}: {cold['edit_seconds']:.2f} s "
          "(context templates sampled and stored)", flush=True)
    for i, record in enumerate(records):
        edits.append(edit(i, record))
        print(f"[{i}] {record['prompt']} -> {record['target_new']}: {edits[-1]['edit_seconds']:.2f} s", flush=True)
    eval_json = os.path.join(tmp, "eval.json")
    _, _, eval_wall, eval_rss = run([args.engram, "eval", args.model, "--data", args.data, "--method", "rome",
                                     "--hparams", args.hparams, "--limit", str(args.limit), "--no-fluency",
                                     "--json", eval_json], env)
    shutil.rmtree(env["ENGRAM_HOME"], ignore_errors=True)
    with open(eval_json) as f:
        agg = json.load(f)["aggregates"]
    keys = {"efficacy": "counterfact.efficacy_score", "paraphrase": "counterfact.paraphrase_score",
            "neighborhood": "counterfact.neighborhood_score", "rewrite_acc": "knowedit.reliability",
            "rephrase_acc": "knowedit.generalization", "locality": "knowedit.locality"}
    scores = {phase: {k: agg[phase][v]["mean"] for k, v in keys.items() if v in agg.get(phase, {})}
              for phase in ("pre", "post")}
    return {"method": "ROME", "records": len(edits), "templates": "stored by an untimed first edit (cold_edit)",
            "cold_edit": cold,
            "edit_seconds": spread([e["edit_seconds"] for e in edits]),
            "process_seconds": spread([e["process_seconds"] for e in edits]),
            "peak_rss_mib": max(e["peak_rss_mib"] for e in edits),
            "eval_run": {"seconds": eval_wall, "peak_rss_mib": eval_rss}, "scores": scores, "per_edit": edits}


def evaluate(args, env):
    help_text = run([args.engram, "eval", "run", "--help"], env)[0]
    flag = re.search(r"--forward-batch[-a-z]*", help_text)
    variants = [("batched", [])] + ([("unbatched", [flag.group(0), "1"])] if flag else [])
    out = {"forward_batch_flag": flag.group(0) if flag else None}
    for name, extra in variants:
        walls = {}
        for n in (1, args.limit):
            cmd = [args.engram, "eval", args.model, "--data", args.data, "--method", "none", "--limit", str(n),
                   "--no-fluency", "--json", os.devnull] + extra
            _, _, walls[n], rss = run(cmd, env)
        seconds = walls[args.limit] - walls[1]
        out[name] = {"records": args.limit, "wall_seconds": {str(k): v for k, v in walls.items()},
                     "marginal_seconds": seconds, "records_per_s": (args.limit - 1) / seconds,
                     "end_to_end_records_per_s": args.limit / walls[args.limit], "peak_rss_mib": rss,
                     "args": extra}
        print(f"Engram evaluation ({name}): {out[name]['records_per_s']:.2f} records/s", flush=True)
    if not flag:
        out["unbatched"] = None
        print("this engram binary has no --forward-batch flag: unbatched evaluation not measured", flush=True)
    return out


def memit_hparams(path):
    import yaml
    with open(path) as f:
        hp = yaml.safe_load(f)
    return [int(l) for l in hp["layers"]], int(hp.get("mom2_n_samples", 2000))


STATS_LINE = re.compile(r"^layer (\d+): (\d+) tokens from (\d+) documents, trace\(C\) = \S+ -> (.+)$", re.M)


def engram_stats(args, env, layers, documents, corpus=None):
    """Runs `engram stats`; returns (wall, peak RSS MiB, {layer: {"tokens", "documents", "file"}})."""
    cmd = [args.engram, "stats", args.model, "--layers", ",".join(map(str, layers)), "--documents", str(documents)]
    stdout, _, wall, rss = run(cmd + (["--corpus", corpus] if corpus else []), env)
    found = {int(m.group(1)): {"tokens": int(m.group(2)), "documents": int(m.group(3)), "file": m.group(4).strip()}
             for m in STATS_LINE.finditer(stdout)}
    if sorted(found) != sorted(layers):
        raise SystemExit(f"unexpected `engram stats` output:\n{stdout[-2000:]}")
    return wall, rss, found


def memit(args, env):
    layers, documents = memit_hparams(args.hparams)
    # Statistics cached before the timed edit (a no-op when they are; the edit would otherwise collect them).
    stats_wall, _, stats = engram_stats(args, env, layers, documents)
    with open(args.data) as f:
        records = json.load(f)[:args.limit]
    tmp = tempfile.mkdtemp(prefix="engram-memit-")
    path = os.path.join(tmp, "records.json")
    with open(path, "w") as f:
        json.dump(records, f)
    # Cached statistics, no stored templates: the timed edit samples its templates, as EasyEdit's
    # edit_seconds include its template sampling.
    home = fresh_home(keep=("models", "stats"))
    _, stderr, wall, rss = run([args.engram, "edit", args.model, "--edits", path, "--method", "memit",
                                "--hparams", args.hparams], dict(env, ENGRAM_HOME=home))
    shutil.rmtree(home, ignore_errors=True)
    m = re.search(r"MEMIT: (\d+) request\(s\) in ([0-9.]+) s \(([0-9.]+) s per request\)", stderr)
    if not m or int(m.group(1)) != len(records):
        raise SystemExit(f"no MEMIT timing line for {len(records)} requests in:\n{stderr[-2000:]}")
    print(f"Engram MEMIT: {len(records)} requests in one batch in {m.group(2)} s, peak RSS {rss:.0f} MiB", flush=True)
    eval_json = os.path.join(tmp, "eval.json")
    _, _, eval_wall, eval_rss = run([args.engram, "eval", args.model, "--data", args.data, "--method", "memit",
                                     "--hparams", args.hparams, "--protocol", "batch", "--batch-size", str(args.limit),
                                     "--limit", str(args.limit), "--no-fluency", "--json", eval_json], env)
    with open(eval_json) as f:
        agg = json.load(f)["aggregates"]
    shutil.rmtree(tmp, ignore_errors=True)
    keys = {"efficacy": "counterfact.efficacy_score", "paraphrase": "counterfact.paraphrase_score",
            "neighborhood": "counterfact.neighborhood_score"}
    scores = {phase: {k: agg[phase][v]["mean"] for k, v in keys.items() if v in agg.get(phase, {})}
              for phase in ("pre", "post")}
    print(f"Engram MEMIT scores: pre {scores['pre']} post {scores['post']}", flush=True)
    return {"method": "MEMIT", "protocol": "one batch", "records": len(records),
            "edit_seconds": float(m.group(2)), "seconds_per_request": float(m.group(3)),
            "process_seconds": wall, "peak_rss_mib": rss,
            "statistics": {"layers": layers, "documents": documents, "check_seconds": stats_wall,
                           "tokens": {str(l): v["tokens"] for l, v in stats.items()},
                           "files": {str(l): v["file"] for l, v in stats.items()}},
            "eval_run": {"seconds": eval_wall, "peak_rss_mib": eval_rss}, "scores": scores}


def stats_throughput(args, env):
    layers, _ = memit_hparams(args.hparams)
    corpus = os.path.join(REPO, "fixtures", "wikitext-2", "wiki.test.raw")
    runs = {}
    for n in (1, args.documents):
        home = fresh_home()
        wall, rss, found = engram_stats(args, dict(env, ENGRAM_HOME=home), layers, n, corpus)
        tokens = {found[l]["tokens"] for l in layers}
        assert len(tokens) == 1, found
        runs[n] = {"documents": n, "tokens": tokens.pop(), "wall_seconds": wall, "peak_rss_mib": rss}
        if n == args.documents and args.keep_stats:  # for easyedit_stats.py --engram-json
            shutil.rmtree(args.keep_stats, ignore_errors=True)
            os.makedirs(args.keep_stats)
            runs[n]["kept_files"] = {}
            for l in layers:
                dest = os.path.join(args.keep_stats, os.path.basename(found[l]["file"]))
                shutil.move(found[l]["file"], dest)
                runs[n]["kept_files"][str(l)] = dest
        shutil.rmtree(home, ignore_errors=True)
        print(f"[{n} documents] {runs[n]['tokens']} tokens, {wall:.2f} s wall", flush=True)
    big, one = runs[args.documents], runs[1]
    out = {"what": "key statistics collection, cold, all layers in one pass", "layers": layers, "precision": "float64",
           "max_length": 256, "corpus": corpus, "documents": args.documents, "tokens": big["tokens"],
           "marginal_seconds": big["wall_seconds"] - one["wall_seconds"],
           "tokens_per_s": (big["tokens"] - one["tokens"]) / (big["wall_seconds"] - one["wall_seconds"]),
           "end_to_end_tokens_per_s": big["tokens"] / big["wall_seconds"], "peak_rss_mib": big["peak_rss_mib"],
           "kept_files": big.get("kept_files"), "runs": {str(k): v for k, v in runs.items()}}
    print(f"Engram statistics: {out['tokens_per_s']:.0f} tokens/s ({len(layers)} layers, {args.documents} documents)",
          flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["rome", "eval", "memit", "stats"])
    ap.add_argument("--engram", required=True, help="engram binary")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--hparams", help="default: hparams/rome/smollm2.yaml (rome, eval) or hparams/memit/smollm2.yaml "
                                      "(memit, stats: its layers and mom2_n_samples)")
    ap.add_argument("--data", default="/work/shared/data/counterfact/counterfact-edit.dev-0-299.json")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--documents", type=int, default=200, help="stats: documents D")
    ap.add_argument("--keep-stats", help="stats: move the D-document statistics files to this folder")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not args.hparams:
        method = "rome" if args.what in ("rome", "eval") else "memit"
        args.hparams = os.path.join(REPO, "hparams", method, "smollm2.yaml")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    before = loadavg()
    result = {"rome": rome, "eval": evaluate, "memit": memit, "stats": stats_throughput}[args.what](args, env)
    out = {"engine": "engram", "what": args.what, "binary": os.path.abspath(args.engram), "model": args.model,
           "data": os.path.abspath(args.data), "hparams": os.path.abspath(args.hparams), "threads": args.threads,
           **result,
           "machine": {"cpu_model": benchcommon.cpu_model(), "logical_cpus": os.cpu_count(),
                       "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                       "openblas": benchcommon.openblas_core(),
                       "openblas_core_chosen_by_engram": ",".join(sorted(CHOSEN_CORES)) or None,
                       "OPENBLAS_NUM_THREADS": env["OPENBLAS_NUM_THREADS"],
                       "loadavg_before": before, "loadavg_after": loadavg()},
           "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
