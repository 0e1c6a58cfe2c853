#!/usr/bin/env python3
"""Prompt-processing and decode speed of Hugging Face transformers (PyTorch, CPU, float32 or --dtype)
on a model loaded from one GGUF file (transformers dequantizes it on load, then casts to the dtype).

pp<P>: one forward of exactly P prompt token ids with a fresh KV cache,
       logits only for the last position (logits_to_keep=1).
tg<N>: after a short prompt, N greedy steps, each a forward of one token with
       the KV cache; only the N steps are timed (argmax included).
One untimed warm-up pass comes first. Prints JSON (see benchcommon.report).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only

import benchcommon as bc


def main():
    args = bc.parse_args(__doc__, extra=lambda ap: ap.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weights and activations"))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    torch.set_num_threads(args.threads)
    folder, name = os.path.split(os.path.abspath(args.model))
    with bc.Timer() as load:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, args.dtype))
        model.eval()
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    rss_after_load = bc.rss_mib()
    settings = {"torch_threads": torch.get_num_threads(), "dtype": args.dtype,
                "attn_implementation": model.config._attn_implementation,
                "cache": "DynamicCache", "logits_to_keep": 1, "grad": "inference_mode"}

    text_ids = tok(bc.TEXT, add_special_tokens=False)["input_ids"]
    prompts = {p: bc.prompt_ids(text_ids, p) for p in args.prompt_tokens}
    decode_prompt = bc.prompt_ids(text_ids, args.decode_prompt_tokens)

    def forward(ids, cache):
        x = torch.tensor([ids], dtype=torch.long)
        return model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]

    @torch.inference_mode()
    def run_pp(ids):
        cache = DynamicCache(config=model.config)
        with bc.Timer() as t:
            forward(ids, cache)
        return t.seconds

    @torch.inference_mode()
    def run_tg(n):
        cache = DynamicCache(config=model.config)
        logits = forward(decode_prompt, cache)
        out = []
        with bc.Timer() as t:
            nxt = int(torch.argmax(logits))
            for _ in range(n):
                logits = forward([nxt], cache)
                out.append(nxt)
                nxt = int(torch.argmax(logits))
        return t.seconds, out

    results, generated = bc.measure(args, prompts, run_pp, run_tg)
    extra = {
        "load_seconds": load.seconds,
        "rss_after_load_mib": rss_after_load,
        "rss_end_mib": bc.rss_mib(),
        "prompt_ids_sha256_16": bc.ids_digest(prompts[max(prompts)]),
        "decode_prompt_ids": decode_prompt,
        "decode_text": tok.decode(generated),
        "torch_config": torch.__config__.parallel_info().strip().splitlines()[:6],
    }
    bc.report(args, "transformers (PyTorch CPU)", settings, results, extra)


if __name__ == "__main__":
    main()
