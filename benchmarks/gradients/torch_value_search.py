#!/usr/bin/env python3
"""The ROME v* search (spec section 2.3) computed the way the Python reference editors compute it,
for a like-for-like timing beside Engram's `GradientTimingTests`.

The reference recipe: all prompts in one right-padded batch, the full model forward at every
position, log-softmax over the whole vocabulary at every position, autograd back to delta. Same
prompts as the Swift timing test (same token ids, same SplitMix64 stand-ins for generated prefixes),
layer 5, 25 steps, Adam lr 0.5, clamp 4, kl 0.0625, weight decay 1e-3.

Usage: python benchmarks/gradients/torch_value_search.py [--model PATH] [--threads 2] [--repeats 2]
"""
import argparse
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM

LAYER = 5
PROMPT = [504, 414, 46682, 18669, 314, 3807, 281, 260, 2240, 282]  # "The Eiffel Tower is located in the city of"
TARGET = [7268]                                                    # " Rome"
ESSENCE = ([504, 414, 46682, 18669, 314, 253], 3)                  # "The Eiffel Tower is a", lookup " Tower"
MASK64 = (1 << 64) - 1


class SplitMix64:
    """Same generator as GradientTestRNG in Tests/EngramTests/GradientTestSupport.swift."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n


def prompts():
    rng = SplitMix64(2024)
    rows = [(PROMPT + TARGET[:-1], 3)]
    for length in (5, 10):
        for _ in range(10):
            prefix = [300 + rng.below(20000) for _ in range(length)] + [30]
            rows.append((prefix + PROMPT + TARGET[:-1], len(prefix) + 3))
    return rows


def value_search(model, rows, steps, early_stop):
    n_t = len(TARGET)
    batch = rows + [ESSENCE]
    width = max(len(t) for t, _ in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    targets = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (t, _) in enumerate(batch):
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, :len(t)] = 1
        if i < len(rows):
            targets[i, len(t) - n_t:len(t)] = torch.tensor(TARGET)
    lookups = [lk for _, lk in batch]
    delta = torch.zeros(model.config.hidden_size, requires_grad=True)
    state = {"init": None}

    def hook(module, inputs, output):
        if state["init"] is None:
            state["init"] = output[0, lookups[0]].detach().clone()
        out = output.clone()
        for i, lk in enumerate(lookups):
            out[i, lk] = out[i, lk] + delta
        return out

    handle = model.model.layers[LAYER].mlp.register_forward_hook(hook)
    opt = torch.optim.Adam([delta], lr=0.5)
    p_init = None
    losses = []
    try:
        for it in range(steps):
            opt.zero_grad()
            logits = model(input_ids=ids, attention_mask=mask).logits
            logp = torch.log_softmax(logits, dim=2)
            picked = torch.gather(logp[:len(rows)], 2, targets.clamp(min=0).unsqueeze(2)).squeeze(2)
            nll = (-(picked * (targets != -100).float()).sum(1) / n_t).mean()
            kl_logp = torch.log_softmax(logits[len(rows), ESSENCE[1]], dim=-1).unsqueeze(0)
            if p_init is None:
                p_init = kl_logp.detach().clone()
            kl = 0.0625 * torch.nn.functional.kl_div(p_init, kl_logp, log_target=True, reduction="batchmean")
            wd = 1e-3 * torch.norm(delta) / torch.norm(state["init"]) ** 2
            loss = nll + kl + wd
            losses.append(loss.item())
            if loss.item() < early_stop or it == steps - 1:
                break
            loss.backward()
            opt.step()
            max_norm = 4 * state["init"].norm()
            if delta.norm() > max_norm:
                with torch.no_grad():
                    delta[...] = delta * max_norm / delta.norm()
    finally:
        handle.remove()
    return losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/engram/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder, name = os.path.split(args.model)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    rows = prompts()
    lengths = [len(t) for t, _ in rows]
    print(f"torch value search: {len(rows)} rewriting prompts of {min(lengths)}-{max(lengths)} tokens, layer {LAYER}, threads {args.threads}")
    for label, stop in (("25 steps (early stop off)", float("-inf")), ("early stop at 5e-2", 5e-2)):
        for _ in range(args.repeats):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.time()
            losses = value_search(model, rows, 25, stop)
            wall = time.time() - t0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            print(f"  {label}: {wall:.2f} s wall, {cpu:.2f} s cpu, {len(losses)} forwards "
                  f"({wall / len(losses):.3f} s each), final loss {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
