"""Shared bits of the peer benchmarks: arguments, prompt ids, stats, machine facts, JSON."""
import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import sys
import time

import psutil

# Plain English used to make the prompt token ids; the ids are cycled if the
# text is shorter than the longest prompt asked for.
TEXT = """\
The old lighthouse stood at the end of a narrow spit of rock, and for most of
the year nobody went there except the keeper. Every evening he climbed the
spiral stairs, one hundred and twelve of them, counted so many times that the
number had become a kind of song. At the top he trimmed the wick, wiped the
salt from the glass, and watched the beam sweep out across the water. Ships he
would never meet passed by in the dark, trusting a light they could not see
the source of. In the mornings he kept a log: the wind, the height of the
waves, the birds that had come to rest on the gallery rail. Some days the log
said nothing more than "fog, calm, two gulls". Other days it ran to pages,
describing storms that shook the tower and sent spray over the lantern room.
He liked to think that someone, years later, would read those pages and know
what the sea had been like when he watched it.

A library works in a similar way. Each book is a small light left burning by
someone who wanted a stranger to find their way. Most readers never meet the
writer, yet they follow the path the writer marked. A good index, a clear
table of contents, a careful footnote: these are the stairs and the trimmed
wick of a book. When a library catalogues its shelves, it does for knowledge
what a chart does for a coastline, showing where the safe channels run and
where the rocks are hidden. Scholars, students, and curious children all rely
on that quiet work without thinking about it.

Computers have added another layer. A search engine reads millions of pages
and builds an index far larger than any person could keep, and a language
model compresses patterns from text into numbers that can be multiplied very
quickly. Measuring how fast that multiplication runs matters because speed
decides what people can afford to do on their own machines. A model that
answers in a second feels like a conversation; one that takes a minute feels
like sending a letter. Engineers therefore count tokens per second, watch
memory use, and compare one implementation with another under the same
conditions, much as the keeper compared today's weather with yesterday's.
"""

VERSION_PACKAGES = ["numpy", "gguf", "safetensors", "torch", "transformers", "tokenizers", "accelerate",
                    "llama_cpp_python", "psutil"]


def parse_args(description, extra=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True, help="GGUF file (an F32 one for the reference runs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", default="128,512", help="comma separated prompt lengths")
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--decode-prompt-tokens", type=int, default=8, help="prompt length before decoding")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    if extra:
        extra(ap)  # an engine's own options
    args = ap.parse_args()
    args.prompt_tokens = [int(x) for x in args.prompt_tokens.split(",") if x]
    return args


def prompt_ids(text_ids, n):
    """The first n ids of the text, cycling through it if it is too short."""
    if not text_ids:
        raise ValueError("tokenizer produced no ids")
    return [text_ids[i % len(text_ids)] for i in range(n)]


def ids_digest(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def summary(tokens, seconds):
    rates = [tokens / s for s in seconds]
    return {
        "tokens": tokens,
        "tok_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "seconds": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)},
        "runs_seconds": seconds,
    }


def measure(args, prompts, run_pp, run_tg):
    """The loop both peers share: one untimed warm-up, then `args.repeats` rounds of every prompt
    length (`run_pp(ids)` -> seconds) and one greedy decode (`run_tg(n)` -> seconds, token ids).
    Returns the summaries by row name and the last decode's tokens."""
    run_pp(prompts[min(prompts)])  # warm-up, untimed
    run_tg(8)
    pp_times = {p: [] for p in prompts}
    tg_times = []
    generated = None
    for _ in range(args.repeats):
        for p, ids in prompts.items():
            pp_times[p].append(run_pp(ids))
        secs, generated = run_tg(args.decode_tokens)
        tg_times.append(secs)
    results = {f"pp{p}": summary(p, s) for p, s in pp_times.items()}
    results[f"tg{args.decode_tokens}"] = summary(args.decode_tokens, tg_times)
    return results, generated


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


_OPENBLAS_PROBE = """
import ctypes
for name in ("libopenblas.so.0", "libopenblas.so"):
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        continue
    lib.openblas_get_config.restype = lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_config().decode(), "core=" + lib.openblas_get_corename().decode())
    break
"""


def openblas_core():
    """The system OpenBLAS build and the core it picks on this CPU, e.g. '... core=Zen': the library and
    environment Engram's kernels run with (OPENBLAS_CORETYPE, if set, changes it). Asked in a child
    process, so the library never adds to the measured process's memory. None if it cannot be loaded."""
    import subprocess
    try:
        out = subprocess.run([sys.executable, "-c", _OPENBLAS_PROBE], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def versions():
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def rss_mib():
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux: the process's high-water mark since start.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def report(args, engine, settings, results, extra):
    out = {
        "engine": engine,
        "model": os.path.abspath(args.model),
        "threads": args.threads,
        "repeats": args.repeats,
        "settings": settings,
        "results": results,
        "peak_rss_mib": peak_rss_mib(),
        **extra,
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas": openblas_core(),
            "platform": platform.platform(),
        },
        "versions": versions(),
        "argv": sys.argv,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json)
    return out
