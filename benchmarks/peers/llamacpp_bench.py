#!/usr/bin/env python3
"""Prompt-processing and decode speed of llama.cpp (through llama-cpp-python) on one GGUF.

pp<P>: time of one eval() of exactly P prompt token ids on an empty KV cache
       (n_batch=512, only the last token's logits are computed).
tg<N>: after a short prompt, N greedy steps, each eval() of one token; only
       the N steps are timed (argmax over the logits included).
One untimed warm-up pass comes first. Prints JSON (see benchcommon.report).
--no-extra-buffers loads the weights without llama.cpp's extra buffer types (its AMX and
repacked-weight layouts), as llama-cli's --no-repack does: on Linux guests where ggml's AMX
product stops with SIGILL (llama.cpp pull request #26954), the quantized files run only so.
"""
import ctypes

import numpy as np

import benchcommon as bc


def main():
    args = bc.parse_args(__doc__, extra=lambda ap: ap.add_argument(
        "--no-extra-buffers", action="store_true",
        help="model parameter use_extra_bufts = false (no AMX or repacked weights)"))
    import llama_cpp
    import llama_cpp.llama_cpp as low_level
    from llama_cpp import Llama

    if args.no_extra_buffers:
        if "use_extra_bufts" not in (name for name, _ in low_level.llama_model_params._fields_):
            raise SystemExit("--no-extra-buffers: this llama-cpp-python has no use_extra_bufts model parameter")
        # Llama() has no argument for it; it starts from these defaults.
        default_params = low_level.llama_model_default_params

        def without_extra_buffers():
            params = default_params()
            params.use_extra_bufts = False
            return params
        low_level.llama_model_default_params = without_extra_buffers

    longest = max(args.prompt_tokens + [args.decode_prompt_tokens + args.decode_tokens])
    n_ctx = max(1024, longest + 16)
    settings = {"n_threads": args.threads, "n_threads_batch": args.threads, "n_batch": 512,
                "n_ubatch": 512, "n_ctx": n_ctx, "logits_all": False, "flash_attn": False,
                "use_mmap": True}
    with bc.Timer() as load:
        llm = Llama(model_path=args.model, verbose=False, **settings)
    rss_after_load = bc.rss_mib()
    n_vocab = llm.n_vocab()

    text_ids = llm.tokenize(bc.TEXT.encode(), add_bos=False, special=False)
    prompts = {p: bc.prompt_ids(text_ids, p) for p in args.prompt_tokens}
    decode_prompt = bc.prompt_ids(text_ids, args.decode_prompt_tokens)

    def last_logits():
        ptr = llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))

    def run_pp(ids):
        llm.reset()  # n_tokens = 0; eval() drops the KV cells from there on
        with bc.Timer() as t:
            llm.eval(ids)
        return t.seconds

    def run_tg(n):
        llm.reset()
        llm.eval(decode_prompt)
        out = []
        with bc.Timer() as t:
            tok = int(np.argmax(last_logits()))
            for _ in range(n):
                llm.eval([tok])
                out.append(tok)
                tok = int(np.argmax(last_logits()))
        return t.seconds, out

    results, generated = bc.measure(args, prompts, run_pp, run_tg)
    extra = {
        "load_seconds": load.seconds,
        "rss_after_load_mib": rss_after_load,
        "rss_end_mib": bc.rss_mib(),
        "prompt_ids_sha256_16": bc.ids_digest(prompts[max(prompts)]),
        "decode_prompt_ids": decode_prompt,
        "decode_text": llm.detokenize(generated).decode("utf-8", "replace"),
        "use_extra_bufts": not args.no_extra_buffers,
        "llama_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }
    bc.report(args, "llama.cpp via llama-cpp-python", settings, results, extra)


if __name__ == "__main__":
    main()
