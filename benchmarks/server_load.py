#!/usr/bin/env python3
"""Load benchmark for `engram serve`: concurrent probe clients while edits are added and removed.

    python benchmarks/server_load.py --engram .build/release/engram [--clients 16] [--seconds 60] [--peer [--mixed]]

Starts `engram serve MODEL` on a free loopback port (token in the environment), then:

1. records the exact probe numbers of three model states: unedited, one IKE edit (prompt-side), and
   one weight patch (a rank-one change of an MLP down projection, uploaded as a patch file);
2. runs N clients probing as fast as they can for the given time while one editor cycles through
   those states (add IKE edit, delete it, upload the weight patch, delete it, ...);
3. reports errors, torn reads (probe answers matching none of the three states' numbers, or not the
   state named by the answer's own edits_in_force), p50/p99 latency and throughput.

With --peer it also loads llama.cpp's server (`python -m llama_cpp.server`, from llama-cpp-python)
and engram with the same completions workload (greedy, --completion-tokens tokens) and reports both.
With --mixed as well, each server then gets half the clients asking for completions and half asking for
next-token reads at the same time (engram: /v1/probe; llama.cpp: one token with top-5 log-probabilities),
which shows how long a short read waits behind completions.
All traffic stays on 127.0.0.1; every loop is bounded in time. Results go to stdout as JSON and text.
"""
import argparse
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np

PROMPT = "The Eiffel Tower is located in the city of"
CANDIDATES = ["Paris", "Rome"]
REQUEST = {"prompt": PROMPT, "subject": "The Eiffel Tower", "target_new": "Rome"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None, raw_body=None, content_type="application/json", timeout=300):
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_healthy(url, proc, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("server did not come up")


def weight_patch(layer=3, d=576, m=1536, scale=0.3, seed=1):
    """An Engram patch file (safetensors + description) with one rank-one delta on mlp_down.<layer>."""
    rng = np.random.default_rng(seed)
    r = ((rng.random((1, d)) * 2 - 1) * scale).astype("<f4")
    u = ((rng.random((1, m)) * 2 - 1) * scale).astype("<f4")
    description = {
        "format": "engram-patch-1", "method": "BenchRankOne", "hyperParameters": {"scale": str(scale)},
        "requests": [{"caseID": "bench", "prompt": PROMPT, "subject": "The Eiffel Tower", "targetNew": "London",
                      "groundTruth": [], "rephrasePrompts": [], "locality": [], "portability": []}],
        "metadata": {}, "deltas": [{"weight": f"mlp_down.{layer}", "kind": "low_rank", "rows": d, "cols": m, "rank": 1}],
    }
    header = {"__metadata__": {"engram.patch": json.dumps(description), "format": "engram-patch-1"},
              "delta.0.r": {"dtype": "F32", "shape": [1, d], "data_offsets": [0, 4 * d]},
              "delta.0.u": {"dtype": "F32", "shape": [1, m], "data_offsets": [4 * d, 4 * (d + m)]}}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + r.tobytes() + u.tobytes()


def probe(base):
    status, body = call(base, "POST", "/v1/probe", {"prompt": PROMPT, "candidates": CANDIDATES, "top_k": 5})
    if status != 200:
        raise RuntimeError(f"probe failed: {status} {body[:200]}")
    return json.loads(body)


def canonical(numbers):
    return json.dumps(numbers, sort_keys=True)


def memory(pid):
    """The server process's resident memory now and at its peak (Linux /proc), in MiB."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        return {}
    return {"rss_mib": fields.get("VmRSS"), "peak_rss_mib": fields.get("VmHWM")}


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def probe_load(base, token, clients, seconds):
    # Reference numbers of each state, and how to enter it.
    states = {"base": canonical(probe(base)["current"])}
    status, body = call(base, "POST", "/v1/edits", {"method": "IKE", "hyper_parameters": {"k": 0}, "requests": [REQUEST]}, token)
    assert status == 201, body
    ike = json.loads(body)["edit"]["id"]
    states["ike"] = canonical(probe(base)["current"])
    call(base, "DELETE", f"/v1/edits/{ike}", token=token)
    patch = weight_patch()
    status, body = call(base, "POST", "/v1/edits", token=token, raw_body=patch, content_type="application/octet-stream")
    assert status == 201, body
    w = json.loads(body)["edit"]["id"]
    states["weights"] = canonical(probe(base)["current"])
    call(base, "DELETE", f"/v1/edits/{w}", token=token)
    assert canonical(probe(base)["current"]) == states["base"], "rollback did not restore the base numbers"
    assert len(set(states.values())) == 3, "the three states must give different numbers"

    kind_of = {}  # edit id -> state name, filled by the editor before the edit can be seen
    kind_lock = threading.Lock()
    stop = time.time() + seconds
    latencies, errors, torn, labels, seen = [], [], [], [], {k: 0 for k in states}
    lock = threading.Lock()
    edits_done = [0]

    def client():
        while time.time() < stop:
            t0 = time.perf_counter()
            status, body = call(base, "POST", "/v1/probe", {"prompt": PROMPT, "candidates": CANDIDATES, "top_k": 5})
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if status != 200:
                    errors.append((status, body[:200].decode(errors="replace")))
                    continue
                r = json.loads(body)
                got = canonical(r["current"])
                match = [k for k, v in states.items() if v == got]
                if not match:
                    torn.append(r["edits_in_force"])
                    continue
                seen[match[0]] += 1
                # Checked after the run, when every edit id's kind is known.
                labels.append((tuple(r["edits_in_force"]), match[0]))

    def editor():
        i = 0
        while time.time() < stop - 0.5:
            if i % 2 == 0:
                status, body = call(base, "POST", "/v1/edits", {"method": "IKE", "hyper_parameters": {"k": 0}, "requests": [REQUEST]}, token)
                kind = "ike"
            else:
                status, body = call(base, "POST", "/v1/edits", token=token, raw_body=patch, content_type="application/octet-stream")
                kind = "weights"
            if status != 201:
                with lock:
                    errors.append((status, body[:200].decode(errors="replace")))
                time.sleep(0.2)
                continue
            eid = json.loads(body)["edit"]["id"]
            with kind_lock:
                kind_of[eid] = kind
            time.sleep(0.25)
            status, body = call(base, "DELETE", f"/v1/edits/{eid}", token=token)
            if status != 200:
                with lock:
                    errors.append((status, body[:200].decode(errors="replace")))
            edits_done[0] += 1
            time.sleep(0.25)
            i += 1

    threads = [threading.Thread(target=client) for _ in range(clients)] + [threading.Thread(target=editor)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    mismatched = sum(1 for active, got in labels if (kind_of.get(active[0], "?") if active else "base") != got)
    return {
        "workload": "probe", "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
        "errors": len(errors), "error_samples": errors[:5], "torn_reads": len(torn), "state_label_mismatches": mismatched,
        "states_seen": seen, "edit_cycles": edits_done[0],
        "throughput_rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


def request_load(base, seconds, groups):
    """Clients sending one kind of request each, as fast as they can, for `seconds`. `groups` is a list
    of (name, clients, path, body); returns per group: requests, errors, throughput, p50/p99 latency and,
    for completions, generated tokens per second."""
    stop = time.time() + seconds
    stats = {name: {"latencies": [], "errors": [], "generated": 0} for name, _, _, _ in groups}
    lock = threading.Lock()

    def client(name, path, body):
        while time.time() < stop:
            t0 = time.perf_counter()
            status, raw = call(base, "POST", path, body)
            dt = time.perf_counter() - t0
            with lock:
                g = stats[name]
                g["latencies"].append(dt)
                if status != 200:
                    g["errors"].append((status, raw[:200].decode(errors="replace")))
                else:
                    g["generated"] += json.loads(raw).get("usage", {}).get("completion_tokens", 0)

    threads = [threading.Thread(target=client, args=(name, path, body)) for name, n, path, body in groups for _ in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    out = {}
    for name, n, path, body in groups:
        g = stats[name]
        out[name] = {"clients": n, "path": path, "body": body, "seconds": round(elapsed, 1), "requests": len(g["latencies"]),
                     "errors": len(g["errors"]), "error_samples": g["errors"][:3],
                     "throughput_rps": round(len(g["latencies"]) / elapsed, 2),
                     "generated_tokens_per_s": round(g["generated"] / elapsed, 1),
                     "p50_ms": round(percentile(g["latencies"], 50) * 1000, 1) if g["latencies"] else None,
                     "p99_ms": round(percentile(g["latencies"], 99) * 1000, 1) if g["latencies"] else None}
    return out


def completion_load(base, clients, seconds, tokens, model):
    # A prompt that the model continues at length, so both servers generate about max_tokens tokens.
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0}
    result = request_load(base, seconds, [("completions", clients, "/v1/completions", body)])["completions"]
    del result["path"], result["body"]
    return {"workload": f"completions max_tokens={tokens}", **result}


def mixed_load(base, clients, seconds, tokens, model, engram, reads="probe"):
    """Half the clients ask for completions, half for next-token reads while those run: on engram a probe
    (top 5 next tokens, two candidates), on llama.cpp's server the nearest request it has (one token with
    the top 5 log-probabilities). Each read is one pass over the same prompt. With reads="completions"
    both servers get that same one-token completion with log-probabilities."""
    completion = {"model": model, "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0}
    if engram and reads == "probe":
        read = ("/v1/probe", {"prompt": PROMPT, "candidates": CANDIDATES, "top_k": 5})
    else:
        read = ("/v1/completions", {"model": model, "prompt": PROMPT, "max_tokens": 1, "temperature": 0, "logprobs": 5})
    half = max(1, clients // 2)
    result = request_load(base, seconds, [("completions", half, "/v1/completions", completion), ("reads", half, *read)])
    return {"workload": f"mixed: {half} clients completions max_tokens={tokens}, {half} clients next-token reads", **result}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engram", default=".build/release/engram")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--gguf", default=os.path.expanduser("~/.cache/engram/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--peer", action="store_true", help="also compare completions with llama.cpp's server")
    ap.add_argument("--peer-seconds", type=float, default=30)
    ap.add_argument("--completion-tokens", type=int, default=16)
    ap.add_argument("--mixed", action="store_true", help="with --peer: also completions and next-token reads together on both servers")
    ap.add_argument("--mixed-reads", choices=["probe", "completions"], default="probe",
                    help="engram's reads in --mixed: /v1/probe (default) or the same one-token completion with logprobs as llama.cpp's")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    results = {}
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ, ENGRAM_SERVER_TOKEN=token)
    server = subprocess.Popen([args.engram, "serve", args.model, "--port", str(port), "--queue-depth", str(4 * args.clients),
                               "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base + "/health", server)
        results["engram_probe"] = probe_load(base, token, args.clients, args.seconds)
        results["engram_probe"]["server_memory"] = memory(server.pid)
        print(json.dumps(results["engram_probe"], indent=1), flush=True)
        if args.peer:
            results["engram_completions"] = completion_load(base, args.clients, args.peer_seconds, args.completion_tokens, args.model)
            results["engram_completions"]["server_memory"] = memory(server.pid)
            print(json.dumps(results["engram_completions"], indent=1), flush=True)
            if args.mixed:
                results["engram_mixed"] = mixed_load(base, args.clients, args.peer_seconds, args.completion_tokens, args.model, engram=True,
                                                     reads=args.mixed_reads)
                print(json.dumps(results["engram_mixed"], indent=1), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)

    if args.peer:
        port = free_port()
        peer = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", args.gguf, "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "2048", "--model_alias", "peer"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base + "/v1/models", peer)
            results["llama_cpp_completions"] = completion_load(base, args.clients, args.peer_seconds, args.completion_tokens, "peer")
            results["llama_cpp_completions"]["server_memory"] = memory(peer.pid)
            print(json.dumps(results["llama_cpp_completions"], indent=1), flush=True)
            if args.mixed:
                results["llama_cpp_mixed"] = mixed_load(base, args.clients, args.peer_seconds, args.completion_tokens, "peer", engram=False)
                print(json.dumps(results["llama_cpp_mixed"], indent=1), flush=True)
        finally:
            peer.terminate()
            peer.wait(timeout=60)

    p = results["engram_probe"]
    print(f"\nprobe load: {p['clients']} clients, {p['seconds']} s, {p['requests']} requests, {p['errors']} errors, "
          f"{p['torn_reads']} torn reads, {p['state_label_mismatches']} state-label mismatches, {p['edit_cycles']} edit cycles; "
          f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, {p['throughput_rps']} req/s; states seen {p['states_seen']}; "
          f"server memory {p.get('server_memory')}")
    for key in ("engram_completions", "llama_cpp_completions"):
        if key in results:
            c = results[key]
            print(f"{key}: {c['requests']} requests, {c['errors']} errors, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
                  f"{c['throughput_rps']} req/s, {c['generated_tokens_per_s']} generated tok/s; server memory {c.get('server_memory')}")
    for key in ("engram_mixed", "llama_cpp_mixed"):
        if key in results:
            m = results[key]
            print(f"{key}: " + "; ".join(f"{k} {m[k]['requests']} requests, {m[k]['errors']} errors, p50 {m[k]['p50_ms']} ms, "
                                          f"p99 {m[k]['p99_ms']} ms, {m[k]['throughput_rps']} req/s" for k in ("completions", "reads")))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    ok = p["errors"] == 0 and p["torn_reads"] == 0 and p["state_label_mismatches"] == 0 and \
        all(results[k][g]["errors"] == 0 for k in ("engram_mixed", "llama_cpp_mixed") if k in results for g in ("completions", "reads"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
