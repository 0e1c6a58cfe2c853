"""What the EasyEdit runners share: importing EasyEdit's ROME, MEMIT and evaluation modules from the fetched
tree (without its package __init__ chain, which imports every editor and trainer), the model, the
records, a CounterFact probability scorer, and the stand-in corpus for EasyEdit's layer_stats (Engram's
statistics documents). EasyEdit itself is never copied into this repository."""
import importlib.machinery
import importlib.util
import json
import argparse
import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
import benchcommon  # noqa: E402  (machine facts, peak RSS, Timer)

HERE = os.path.dirname(os.path.abspath(__file__))
ENGRAM_HOME = os.environ.get("ENGRAM_HOME", os.path.expanduser("~/.cache/engram"))
DEFAULT_TREE = os.path.join(ENGRAM_HOME, "bench", "EasyEdit")
DEFAULT_MODEL = os.path.join(ENGRAM_HOME, "bench", "SmolLM2-135M-Instruct-hf")
DEFAULT_DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "counterfact", "counterfact-edit.dev-0-299.json")


def parse_args(doc, default_limit, default_hparams, add_args=None, argv=None):
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--tree", default=DEFAULT_TREE, help="EasyEdit work tree (setup-easyedit.sh)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="Hugging Face folder")
    ap.add_argument("--hparams", default=os.path.join(HERE, default_hparams))
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=default_limit)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    if add_args:
        add_args(ap)
    return ap.parse_args(argv)


def setup(doc, default_limit):
    """The runners' shared start: arguments, threads, EasyEdit's modules, ROME hyper-parameters, the model.
    Returns (args, hp, model, tok, load_timer, rome_main, compute_edit_quality, stubbed)."""
    args = parse_args(doc, default_limit, "rome-smollm2.yaml")
    set_threads(args.threads)
    rome_main, ROMEHyperParams, compute_edit_quality, stubbed = import_easyedit(args.tree)
    hp = ROMEHyperParams.from_hparams(args.hparams)
    hp.model_name = args.model
    with benchcommon.Timer() as load:
        model, tok = load_model(args.model)
    return args, hp, model, tok, load, rome_main, compute_edit_quality, stubbed


def setup_memit(args):
    """MEMIT runners' start (after parse_args): threads, EasyEdit's MEMIT and layer_stats modules, MEMIT
    hyper-parameters (model_name = the Hugging Face folder; stats_dir = args.stats_dir), the model.
    Returns (hp, model, tok, load_timer, modules) with modules.memit_main, .layer_stats (the module),
    .compute_edit_quality, .stubbed."""
    set_threads(args.threads)
    _, _, compute_edit_quality, stubbed = import_easyedit(args.tree)
    from easyeditor.models.memit import memit_main
    from easyeditor.models.memit.memit_hparams import MEMITHyperParams
    from easyeditor.models.rome import layer_stats
    hp = MEMITHyperParams.from_hparams(args.hparams)
    hp.model_name = args.model
    hp.stats_dir = args.stats_dir
    with benchcommon.Timer() as load:
        model, tok = load_model(args.model)
    modules = types.SimpleNamespace(memit_main=memit_main, layer_stats=layer_stats,
                                    compute_edit_quality=compute_edit_quality, stubbed=stubbed)
    return hp, model, tok, load, modules


# --- What the MEMIT runners share (easyedit_memit.py, easyedit_sequential.py) ------------------------------

TEMPLATE_SEEDS = ["The", "Therefore", "Because", "I", "You"]  # EasyEdit's (and Engram's) template seed words


def add_memit_args(ap):
    import corpus
    ap.add_argument("--corpus", default=corpus.DEFAULT_PATH)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH)
    ap.add_argument("--stats-dir", help="EasyEdit stats_dir (default: per corpus under $ENGRAM_HOME/bench)")
    ap.add_argument("--templates", default="10,10",
                    help="LENGTH,COUNT of the generated context templates (Engram's MEMIT yaml: 10,10); "
                         "'easyedit' keeps EasyEdit's MEMIT default (10, 5)")
    ap.add_argument("--generation", choices=["llama", "as-is"], default="llama",
                    help="llama: mark the model so that EasyEdit's generate_fast takes its LLaMA branch "
                         "(easyedit_common.llama_generation); as-is: the folder name decides (non-LLaMA branch)")


def memit_statistics(args, hp, model, tok, layer_stats_module):
    """The statistics as MEMIT's get_cov reads them, {layer: CombinedStat}, and the seconds spent preparing
    them: when they are not cached, `easyedit_stats.py prepare` collects them in a child process (so that
    this process's peak RSS stays the edit's). Leaves layer_stats unable to collect."""
    import subprocess
    import time

    def cached():
        forbid_collection(layer_stats_module)
        try:
            return {l: layer_stats_module.layer_stats(
                        model, tok, hp.rewrite_module_tmp.format(l), hp.stats_dir, hp.mom2_dataset,
                        to_collect=["mom2"], sample_size=hp.mom2_n_samples, precision=hp.mom2_dtype, hparams=hp)
                    for l in hp.layers}
        except FileNotFoundError:
            return None

    stats = cached()
    if stats is not None:
        return stats, None
    t0 = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(HERE, "easyedit_stats.py"), "prepare", "--tree", args.tree,
                    "--model", args.model, "--hparams", args.hparams, "--threads", str(args.threads),
                    "--corpus", args.corpus, "--max-length", str(args.max_length), "--stats-dir", hp.stats_dir],
                   check=True)
    seconds = time.perf_counter() - t0
    stats = cached()
    assert stats is not None, "statistics still missing after easyedit_stats.py prepare"
    return stats, seconds


def memit_context_templates(memit_main, model, tok, setting):
    """MEMIT's context templates, stored in its cache: 'easyedit' keeps its (10, 5) default; 'LENGTH,COUNT'
    formats COUNT generated prefixes of LENGTH tokens as EasyEdit formats its group (Engram's [[10, 10]])."""
    if setting == "easyedit":
        return memit_main.get_context_templates(model, tok)
    length, count = map(int, setting.split(","))
    memit_main.CONTEXT_TEMPLATES_CACHE = [["{}"], [
        f.replace("{", " ").replace("}", " ") + ". {}"
        for f in memit_main.generate_fast(model, tok, TEMPLATE_SEEDS, n_gen_per_prompt=count // len(TEMPLATE_SEEDS),
                                          max_out_len=length)]]
    return memit_main.CONTEXT_TEMPLATES_CACHE


# --- Statistics corpus: Engram's documents for EasyEdit's layer_stats ------------------------------------

MAX_LENGTH = 256  # Engram's KeyStatisticsCollector.maxLength (engram stats --max-length default)


def default_stats_dir(corpus_path, max_length=MAX_LENGTH):
    """EasyEdit's stats_dir for statistics over Engram's corpus: one folder per corpus content and
    truncation, since EasyEdit's cache file names hold neither (only the data set name and sample size)."""
    import corpus
    return os.path.join(ENGRAM_HOME, "bench", "easyedit-stats", f"{corpus.sha256(corpus_path)[:16]}-len{max_length}")


def use_corpus(layer_stats_module, documents, max_length=MAX_LENGTH):
    """Makes EasyEdit's layer_stats read `documents` (all of them: give exactly the first sample_size
    documents, since its sampler takes a seeded random subset of that size) instead of downloading a data
    set, and truncate each to max_length tokens as Engram does. Two module attributes of layer_stats are
    replaced (its file is not edited): `load_dataset` (returns {"train": [{"text": ...}, ...]}) and
    `TokenizedDataset` (EasyEdit's class with maxlen capped at max_length; its default here would be the
    model's max_position_embeddings, 8192)."""
    from easyeditor.models.rome.tok_dataset import TokenizedDataset
    train = [{"text": d} for d in documents]

    def load_dataset(name, config=None, **kwargs):
        return {"train": train}

    def capped(text_dataset, tokenizer=None, maxlen=None, field="text"):
        return TokenizedDataset(text_dataset, tokenizer, maxlen=min(maxlen or max_length, max_length), field=field)

    layer_stats_module.load_dataset = load_dataset
    layer_stats_module.TokenizedDataset = capped


def forbid_collection(layer_stats_module):
    """Makes layer_stats raise instead of collecting (to test whether its statistics are cached)."""
    def load_dataset(*args, **kwargs):
        raise FileNotFoundError("EasyEdit statistics are not cached")
    layer_stats_module.load_dataset = load_dataset


def count_tokens(tok, documents, max_length=MAX_LENGTH):
    """Tokens of the documents as both tools feed them: the Hugging Face tokenizer (no BOS for this model,
    like Engram's encode), at most max_length per document."""
    return sum(min(len(tok.encode(d)), max_length) for d in documents)


def engram_moment(path):
    """E[k kᵀ] (float64 numpy) and the token count from an Engram key-statistics file (safetensors, F64 raw
    sum under "sum", count in the metadata)."""
    import numpy as np
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        start, end = header["sum"]["data_offsets"]
        f.seek(8 + n + start)
        width = header["sum"]["shape"][0]
        s = np.frombuffer(f.read(end - start), dtype="<f8").reshape(width, width)
    tokens = int(header["__metadata__"]["tokens"])
    return s / max(tokens, 1), tokens


def compare_moments(engram_path, easyedit_stat):
    """How close EasyEdit's statistic (a layer_stats CombinedStat) is to Engram's file: token counts and
    the relative Frobenius difference of E[k kᵀ]."""
    import numpy as np
    c_engram, tokens = engram_moment(engram_path)
    c_easy = easyedit_stat.mom2.moment().double().cpu().numpy()
    return {"engram_tokens": tokens, "easyedit_tokens": int(easyedit_stat.mom2.count),
            "relative_frobenius_difference": float(np.linalg.norm(c_easy - c_engram) / np.linalg.norm(c_engram))}


def _module(name, path=None, **attrs):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    m.__path__ = [path] if path else []
    m.__spec__.submodule_search_locations = m.__path__
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _not_on_this_path(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is stubbed by benchmarks/editing (not used by ROME or compute_edit_quality; "
                           "layer_stats gets easyedit_common.use_corpus instead)")
    return fail


def import_easyedit(tree):
    """Returns (rome_main, ROMEHyperParams, compute_edit_quality, stubbed third-party names)."""
    import torch  # noqa: F401  real packages first, so that their availability checks see the real environment
    import transformers  # noqa: F401
    root = os.path.join(tree, "easyeditor")
    # Package shells instead of easyeditor/__init__.py (and models/, evaluate/ __init__), whose star imports
    # pull in every method, the trainers and their dependencies (peft, sentence-transformers, zhipuai, ...).
    _module("easyeditor", root)
    _module("easyeditor.models", os.path.join(root, "models"))
    _module("easyeditor.evaluate", os.path.join(root, "evaluate"))
    # Imported by evaluate.py / evaluate_utils.py, never called by compute_edit_quality for ROME.
    _module("easyeditor.trainer")
    _module("easyeditor.models.melo")
    _module("easyeditor.models.melo.melo", LORA=type("LORA", (), {}))
    # Third-party modules imported at module level on this path but not called (compute_v imports
    # matplotlib.style.context; layer_stats imports datasets.load_dataset, replaced by use_corpus;
    # evaluate_utils imports scipy, nltk and sklearn for fluency and F1). Stubbed only when absent.
    third_party = {
        "matplotlib": {"matplotlib.style": {"context": None}},
        "datasets": {"datasets": {"load_dataset": _not_on_this_path("datasets.load_dataset")}},
        "scipy": {}, "nltk": {},
        "sklearn": {"sklearn.metrics": {"f1_score": _not_on_this_path("sklearn.metrics.f1_score")}},
    }
    stubbed = []
    for top, subs in third_party.items():
        if importlib.util.find_spec(top) is None:
            _module(top)
            for name, attrs in subs.items():
                _module(name, **attrs)
            stubbed.append(top)
    from easyeditor.models.rome import rome_main
    from easyeditor.models.rome.rome_hparams import ROMEHyperParams
    from easyeditor.evaluate.evaluate import compute_edit_quality
    return rome_main, ROMEHyperParams, compute_edit_quality, stubbed


def easyedit_commit(tree):
    try:
        return open(os.path.join(tree, ".engram-commit")).read().strip()
    except OSError:
        return None


def set_threads(threads):
    import torch
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_model(model_dir):
    """Model and tokenizer as EasyEdit's BaseEditor prepares them for ROME on a LLaMA-family model:
    float32, pad = eos, right padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.pad_token_id = tok.eos_token_id
    tok.padding_side = "right"
    return model, tok


def llama_generation(model):
    """EasyEdit's generate_fast (its context templates) takes its LLaMA branch (no attention mask next to
    the KV cache) only when 'llama' is in model.name_or_path, which the Hugging Face folder's name lacks;
    its other branch passes the mask of the new position only, with which this model ignores the cached
    context and the templates come out as punctuation ('The-,,,-, and, the.'). Adds a LLaMA marker to
    model.name_or_path (nothing else on these paths reads it; model.config._name_or_path, which names
    EasyEdit's statistics cache files, is unchanged). Used by easyedit_memit.py and easyedit_rome.py."""
    if "llama" not in model.name_or_path.lower():
        model.name_or_path = model.name_or_path + "#llama"
    return model.name_or_path


def load_records(path, limit):
    with open(path) as f:
        records = json.load(f)
    return records[:limit]


def request(record):
    """A flattened CounterFact record as the request dict EasyEdit's editor builds (one neighborhood probe)."""
    return {
        "prompt": record["prompt"],
        "subject": record["subject"],
        "target_new": record["target_new"],
        "ground_truth": record["ground_truth"],
        "rephrase_prompt": record["rephrase_prompt"],
        "portability": {},
        "locality": {"neighborhood": {"prompt": record["locality_prompt"],
                                      "ground_truth": record["locality_ground_truth"]}},
    }


def target_nll(model, tok, prompt, target):
    """Mean NLL of the target's tokens after the prompt: text = prompt + ' ' + target tokenized whole, split
    at the prompt's own token count (the convention Engram's CounterFact scores use)."""
    import torch
    text = prompt + (target if target[:1].isspace() else " " + target)
    ids = tok(text, return_tensors="pt").input_ids
    n = len(tok(prompt).input_ids)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    gold = ids[0, n:]
    return float(-logp[n - 1:-1].gather(1, gold[:, None]).mean())


def counterfact_nlls(model, tok, record):
    """Mean NLL of the new and the true target after the prompt, the paraphrase and the neighborhood prompt:
    {"efficacy": (new, true), "paraphrase": (...), "neighborhood": (...)}."""
    new, true = record["target_new"], record["ground_truth"]
    return {name: (target_nll(model, tok, record[key], new), target_nll(model, tok, record[key], true))
            for name, key in (("efficacy", "prompt"), ("paraphrase", "rephrase_prompt"),
                              ("neighborhood", "locality_prompt"))}


def counterfact_scores(model, tok, record, nlls=None):
    """CounterFact ES/PS/NS of one record (1 or 0 each): is the new target more probable than the true one
    on the prompt and the paraphrase, and the true one more probable on the neighborhood prompt. `nlls`:
    counterfact_nlls of the record, when already computed."""
    n = nlls or counterfact_nlls(model, tok, record)
    return {"efficacy": float(n["efficacy"][0] < n["efficacy"][1]),
            "paraphrase": float(n["paraphrase"][0] < n["paraphrase"][1]),
            "neighborhood": float(n["neighborhood"][0] > n["neighborhood"][1])}


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def write_json(path, out):
    text = json.dumps(out, indent=2)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    return text


def machine(threads):
    import torch
    return {"cpu_model": benchcommon.cpu_model(), "logical_cpus": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas": benchcommon.openblas_core(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(), "requested_threads": threads,
            "loadavg": open("/proc/loadavg").read().split()[:3]}
