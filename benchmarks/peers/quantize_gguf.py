#!/usr/bin/env python3
"""Quantizes a GGUF with llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize).

Usage: python benchmarks/peers/quantize_gguf.py SOURCE.gguf OUT.gguf FTYPE
FTYPE is a llama.cpp file type name such as Q4_K_M, Q5_K_M, Q6_K, Q8_0 or Q5_0 (LLAMA_FTYPE_MOSTLY_<FTYPE>).
The mix of block types per tensor is llama.cpp's: e.g. Q4_K_M stores rows that are not a multiple of 256
(all of SmolLM2's but the MLP down projection) as Q5_0, and some tensors as Q6_K or Q8_0.
The output is written beside OUT and renamed into place when complete.
"""
import ctypes
import os
import sys

import llama_cpp


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, out, ftype = sys.argv[1:]
    name = "LLAMA_FTYPE_MOSTLY_" + ftype.upper()
    if not hasattr(llama_cpp, name):
        sys.exit(f"unknown llama.cpp file type {ftype!r} (no llama_cpp.{name})")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = os.cpu_count() or 1
    partial = out + ".partial"
    if llama_cpp.llama_model_quantize(source.encode(), partial.encode(), ctypes.byref(params)) != 0:
        sys.exit(f"llama.cpp could not quantize {source} to {ftype}")
    os.replace(partial, out)


if __name__ == "__main__":
    main()
