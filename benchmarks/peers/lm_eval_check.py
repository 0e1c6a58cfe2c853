#!/usr/bin/env python3
"""Grades the model `engram serve` serves with lm-evaluation-harness, before and after live edits, and
checks that the harness's log-likelihoods equal the server's own probe numbers.

lm-eval's `local-completions` model scores a choice by asking /v1/completions for the prompt's tokens
echoed with log-probabilities (`echo`, `logprobs: 1`, `max_tokens: 1`) and summing the choice's part.
The task here is CounterFact as multiple choice: the true object against the counterfactual one, for
the first N dev records (accuracy = how often the model prefers the true object). Then the first K
records are edited with ROME through the server and the harness runs again: those records flip.

    bash benchmarks/peers/setup-lmeval-venv.sh
    ~/.cache/engram/lmeval-venv/bin/python benchmarks/peers/lm_eval_check.py --engram .build/release/engram

Exits non-zero if any harness log-likelihood differs from the probe's by more than 1e-3.
"""
import argparse
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def call(base, method, path, body=None, token=None, timeout=600):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def run_harness(base, tokenizer, tasks, out):
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "lm_eval", "--model", "local-completions",
           "--model_args", f"model=smollm2,base_url={base}/v1/completions,tokenizer={tokenizer},"
                           "tokenizer_backend=huggingface,num_concurrent=1,max_retries=1",
           "--tasks", "engram_counterfact", "--include_path", tasks, "--log_samples", "--output_path", out]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    [samples] = glob.glob(os.path.join(out, "*", "samples_engram_counterfact_*.jsonl"))
    rows = [json.loads(line) for line in open(samples)]
    return sorted(rows, key=lambda r: r["doc_id"])


def compare(base, rows):
    """Largest |harness − probe| over every choice of every record."""
    worst = 0.0
    for r in rows:
        probe = call(base, "POST", "/v1/probe", {"prompt": r["doc"]["prompt"], "candidates": r["doc"]["choices"]})
        ours = [c["logprob"] for c in probe["current"]["candidates"]]
        harness = [float(x[0][0]) for x in r["resps"]]
        worst = max(worst, max(abs(a - b) for a, b in zip(harness, ours)))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engram", default=os.path.join(REPO, ".build/release/engram"))
    ap.add_argument("--records", type=int, default=40, help="CounterFact dev records graded")
    ap.add_argument("--edits", type=int, default=3, help="records edited with ROME before the second run")
    ap.add_argument("--work", default=os.path.join(os.environ.get("ENGRAM_HOME", os.path.expanduser("~/.cache/engram")), "lmeval"))
    ap.add_argument("--shared", default=os.environ.get("ENGRAM_SHARED", os.path.join(REPO, "..", "shared")))
    args = ap.parse_args()
    home = os.environ.get("ENGRAM_HOME", os.path.expanduser("~/.cache/engram"))
    gguf = os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    records = json.load(open(os.path.join(args.shared, "data/counterfact/counterfact-edit.dev-0-299.json")))[:args.records]

    # The harness tokenizes prompts itself: the GGUF's tokenizer, saved in Hugging Face's layout.
    tokenizer = os.path.join(args.work, "tokenizer")
    if not os.path.exists(os.path.join(tokenizer, "tokenizer.json")):
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf)).save_pretrained(tokenizer)
    tasks = os.path.join(args.work, "tasks")
    os.makedirs(tasks, exist_ok=True)
    with open(os.path.join(tasks, "counterfact.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps({"prompt": r["prompt"], "choices": [r["ground_truth"], r["target_new"]]}) + "\n")
    with open(os.path.join(tasks, "engram_counterfact.yaml"), "w") as f:
        f.write("task: engram_counterfact\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                f"    test: {os.path.join(tasks, 'counterfact.jsonl')}\ntest_split: test\noutput_type: multiple_choice\n"
                'doc_to_text: "{{prompt}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: 0\ntarget_delimiter: " "\n'
                "metric_list:\n  - metric: acc\n")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    server = subprocess.Popen([args.engram, "serve", "smollm2", "--port", str(port), "--log-level", "warning"],
                              env=dict(os.environ, ENGRAM_SERVER_TOKEN=token))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                call(base, "GET", "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        before = run_harness(base, tokenizer, tasks, os.path.join(args.work, "out-before"))
        worst_before = compare(base, before)
        for r in records[:args.edits]:
            call(base, "POST", "/v1/edits", {"method": "ROME", "requests": [
                {"prompt": r["prompt"], "subject": r["subject"], "target_new": r["target_new"]}]}, token)
        after = run_harness(base, tokenizer, tasks, os.path.join(args.work, "out-after"))
        worst_after = compare(base, after)
    finally:
        server.terminate()
        server.wait(timeout=60)

    def acc(rows, ids):
        return sum(rows[i]["acc"] for i in ids) / len(ids)
    edited, rest = range(args.edits), range(args.edits, len(records))
    print(f"lm-eval local-completions against engram serve, {len(records)} CounterFact records "
          f"(accuracy = prefers the true object over the new one)")
    print(f"| state | edited records ({args.edits}) | other records ({len(rest)}) | max abs(harness - probe) |")
    print("|---|---|---|---|")
    print(f"| unedited | {acc(before, edited):.3f} | {acc(before, rest):.3f} | {worst_before:.2e} |")
    print(f"| {args.edits} ROME edits live | {acc(after, edited):.3f} | {acc(after, rest):.3f} | {worst_after:.2e} |")
    sys.exit(0 if max(worst_before, worst_after) <= 1e-3 else 1)


if __name__ == "__main__":
    main()
