"""Engram's side of the editing benchmark: runs the engram binary and times it.

  rome: one `engram edit --method rome` process per record (the CLI's own timer covers the edit alone:
        context templates, k*, v* search, rank-one update; model load and the before/after table are
        outside it), peak RSS of each process from wait4; then `engram eval --method rome --limit N`
        for the CounterFact and KnowEdit scores of the same single edits (and its peak RSS).
  eval: `engram eval --method none` on N records and on 1 record, default forward batching and (if the
        binary has the flag) forward batch 1; records/s = (N - 1) / (wall(N) - wall(1)), so model load
        and the first record's warm-up cancel.

  python engram_runs.py rome --engram BIN --limit 10 --threads 2 --json engram-rome.json
  python engram_runs.py eval --engram BIN --limit 50 --threads 2 --json engram-eval.json
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import benchcommon  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


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
    return stdout, stderr, wall, usage.ru_maxrss / 1024


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def rome(args, env):
    with open(args.data) as f:
        records = json.load(f)[:args.limit]
    edits, tmp = [], tempfile.mkdtemp(prefix="engram-rome-")
    for i, record in enumerate(records):
        path = os.path.join(tmp, f"record-{i}.json")
        with open(path, "w") as f:
            json.dump([record], f)
        _, stderr, wall, rss = run([args.engram, "edit", args.model, "--edits", path, "--method", "rome",
                                    "--hparams", args.hparams], env)
        m = re.search(r"ROME: 1 request\(s\) in [0-9.]+ s \(([0-9.]+) s per request\)", stderr)
        if not m:
            raise SystemExit(f"no ROME timing line in:\n{stderr[-2000:]}")
        edits.append({"case_id": record.get("case_id", i), "edit_seconds": float(m.group(1)),
                      "process_seconds": wall, "peak_rss_mib": rss})
        print(f"[{i}] {record['prompt']} -> {record['target_new']}: {edits[-1]['edit_seconds']:.2f} s", flush=True)
    eval_json = os.path.join(tmp, "eval.json")
    _, _, eval_wall, eval_rss = run([args.engram, "eval", args.model, "--data", args.data, "--method", "rome",
                                     "--hparams", args.hparams, "--limit", str(args.limit), "--no-fluency",
                                     "--json", eval_json], env)
    with open(eval_json) as f:
        agg = json.load(f)["aggregates"]
    keys = {"efficacy": "counterfact.efficacy_score", "paraphrase": "counterfact.paraphrase_score",
            "neighborhood": "counterfact.neighborhood_score", "rewrite_acc": "knowedit.reliability",
            "rephrase_acc": "knowedit.generalization", "locality": "knowedit.locality"}
    scores = {phase: {k: agg[phase][v]["mean"] for k, v in keys.items() if v in agg.get(phase, {})}
              for phase in ("pre", "post")}
    return {"method": "ROME", "records": len(edits),
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["rome", "eval"])
    ap.add_argument("--engram", required=True, help="engram binary")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--hparams", default=os.path.join(REPO, "hparams", "rome", "smollm2.yaml"))
    ap.add_argument("--data", default="/work/shared/data/counterfact/counterfact-edit.dev-0-299.json")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    before = loadavg()
    result = rome(args, env) if args.what == "rome" else evaluate(args, env)
    out = {"engine": "engram", "what": args.what, "binary": os.path.abspath(args.engram), "model": args.model,
           "data": os.path.abspath(args.data), "hparams": os.path.abspath(args.hparams), "threads": args.threads,
           **result,
           "machine": {"cpu_model": benchcommon.cpu_model(), "logical_cpus": os.cpu_count(),
                       "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
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
