#!/usr/bin/env python3
"""Checks that the official `openai` Python client works unchanged against `engram serve`.

Not part of `swift test`. Run it with a Python that has `openai` installed, either against a running
server or letting it start one:

    python Tests/openai_client_check.py --engram .build/release/engram          # starts `engram serve smollm2`
    python Tests/openai_client_check.py --base-url http://127.0.0.1:8080 --token-file FILE

Prints one line per check and ends with 'N passed, N failed'; exits non-zero on any failure.
"""
import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai

results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok    {name}")
        except Exception as e:  # a check failing must not stop the others
            results.append((name, e))
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
        return fn
    return wrap


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base, proc=None, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not become healthy")


def raw(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", help="a running server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--engram", help="the engram binary to start (when no --base-url)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--token-file", help="token of the running server (for the edit checks)")
    args = ap.parse_args()

    proc = None
    token = None
    if args.base_url:
        base = args.base_url.rstrip("/")
        if args.token_file:
            token = open(args.token_file).read().split()[0]
    else:
        if not args.engram:
            ap.error("give --base-url or --engram")
        port = free_port()
        token = secrets.token_hex(16)
        env = dict(os.environ, ENGRAM_SERVER_TOKEN=token)
        proc = subprocess.Popen([args.engram, "serve", args.model, "--port", str(port), "--log-level", "warning"], env=env)
        base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        run_checks(base, token)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    failed = sum(1 for _, e in results if e is not None)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run_checks(base, token):
    client = openai.OpenAI(base_url=base + "/v1", api_key=token or "unused", max_retries=0)
    model = client.models.list().data[0].id
    prompt = "The Eiffel Tower is located in the city of"
    state = {}

    @check("models.list")
    def _():
        ids = [m.id for m in client.models.list().data]
        assert model in ids, ids
        assert client.models.retrieve(model).id == model

    @check("completions.create")
    def _():
        r = client.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0)
        assert r.object == "text_completion" and len(r.choices) == 1
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        again = client.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0)
        assert again.choices[0].text == r.choices[0].text, "greedy decoding is deterministic"
        state["text"] = r.choices[0].text

    @check("completions.create(stream=True)")
    def _():
        stream = client.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0, stream=True,
                                           stream_options={"include_usage": True})
        pieces, finish, usage = [], None, None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].text)
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == state["text"], ("".join(pieces), state["text"])
        assert finish in ("stop", "length") and usage is not None and usage.completion_tokens > 0

    @check("chat.completions.create")
    def _():
        r = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "Answer briefly."},
                                                                  {"role": "user", "content": "What is the capital of France?"}],
                                           max_tokens=16, temperature=0)
        assert r.object == "chat.completion"
        assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
        state["chat"] = r.choices[0].message.content

    @check("chat.completions.create(stream=True)")
    def _():
        stream = client.chat.completions.create(model=model, messages=[{"role": "system", "content": "Answer briefly."},
                                                                       {"role": "user", "content": "What is the capital of France?"}],
                                                max_tokens=16, temperature=0, stream=True)
        text, roles, finish = "", [], None
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            d = chunk.choices[0].delta
            if d.role:
                roles.append(d.role)
            text += d.content or ""
            finish = chunk.choices[0].finish_reason or finish
        assert roles == ["assistant"] and text == state["chat"] and finish in ("stop", "length")

    @check("sampling parameters (seeded)")
    def _():
        a = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, temperature=0.9, top_p=0.95, seed=7)
        b = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, temperature=0.9, top_p=0.95, seed=7)
        assert a.choices[0].text == b.choices[0].text

    @check("n choices per prompt")
    def _():
        r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, temperature=1.0, seed=3, n=3)
        assert [c.index for c in r.choices] == [0, 1, 2]
        alone = client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, temperature=1.0, seed=4)
        assert r.choices[1].text == alone.choices[0].text, "choice j is sampled with seed + j"

    @check("stop strings")
    def _():
        r = client.completions.create(model=model, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=[" 7"])
        assert " 7" not in r.choices[0].text and r.choices[0].finish_reason == "stop", r.choices[0]

    @check("logprobs (completions with echo, chat with top_logprobs)")
    def _():
        r = client.completions.create(model=model, prompt=prompt, max_tokens=2, temperature=0, logprobs=3, echo=True)
        lp = r.choices[0].logprobs
        assert r.choices[0].text.startswith(prompt) and "".join(lp.tokens) == r.choices[0].text, (r.choices[0].text, lp.tokens)
        assert lp.token_logprobs[0] is None and all(x <= 0 for x in lp.token_logprobs[1:])
        assert len(lp.top_logprobs[-1]) == 3 and max(lp.top_logprobs[-1].values()) == lp.token_logprobs[-1], "greedy picks the likeliest"
        c = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
                                           max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
        content = c.choices[0].logprobs.content
        assert "".join(e.token for e in content) == c.choices[0].message.content
        assert all(len(e.top_logprobs) == 2 and e.top_logprobs[0].logprob == e.logprob and bytes(e.bytes) == e.token.encode() for e in content)

    @check("streamed logprobs join to the whole answer's")
    def _():
        args = dict(model=model, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, logprobs=2, stop=[" 7"])
        whole = client.completions.create(**args).choices[0].logprobs
        tokens, offsets = [], []
        for chunk in client.completions.create(stream=True, **args):
            lp = chunk.choices[0].logprobs if chunk.choices else None
            if lp is not None:
                tokens += lp.tokens
                offsets += lp.text_offset
        assert tokens == whole.tokens and offsets == whole.text_offset, (tokens, whole.tokens)
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        chat = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
        streamed = []
        for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, logprobs=True,
                                                    top_logprobs=2, stream=True):
            if chunk.choices and chunk.choices[0].logprobs is not None:
                streamed += chunk.choices[0].logprobs.content
        assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in chat.choices[0].logprobs.content]

    @check("errors surface as openai exceptions naming the field")
    def _():
        try:
            client.completions.create(model=model, prompt=prompt, max_tokens=4, extra_body={"bogus": 1})
            raise AssertionError("no error")
        except openai.BadRequestError as e:
            assert e.status_code == 400 and e.body["param"] == "bogus", e.body
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=10**9)
            raise AssertionError("no error")
        except openai.BadRequestError as e:
            assert e.body["param"] == "max_tokens", e.body

    @check("edits change completions; rollback restores them")
    def _():
        if not token:
            raise AssertionError("no token given (--token-file), cannot test editing")
        status, before = raw(base, "POST", "/v1/probe", {"prompt": prompt, "candidates": ["Paris", "Rome"]})
        assert status == 200, before
        status, created = raw(base, "POST", "/v1/edits", {"method": "IKE", "hyper_parameters": {"k": 0}, "requests": [
            {"prompt": prompt, "subject": "The Eiffel Tower", "target_new": "Rome"}]}, token)
        assert status == 201, created
        edit = created["edit"]["id"]
        r = client.completions.create(model=model, prompt=prompt, max_tokens=3, temperature=0)
        status, during = raw(base, "POST", "/v1/probe", {"prompt": prompt, "candidates": ["Paris", "Rome"]})
        assert during["current"]["candidates"][1]["probability"] > before["current"]["candidates"][1]["probability"]
        assert r.system_fingerprint != "" and r.choices[0].text is not None
        status, _ = raw(base, "DELETE", "/v1/edits/" + edit, None, token)
        assert status == 200
        status, after = raw(base, "POST", "/v1/probe", {"prompt": prompt, "candidates": ["Paris", "Rome"]})
        assert after["current"] == before["current"]


if __name__ == "__main__":
    main()
