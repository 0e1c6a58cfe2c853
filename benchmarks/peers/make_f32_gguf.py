#!/usr/bin/env python3
"""Write an all-F32 copy of a GGUF model.

    make_f32_gguf.py IN.gguf OUT.gguf [--check]

Every tensor is dequantized to float32 with gguf's own dequantize; names,
shapes, order and metadata are kept as they are (Q/K weights stay in the
layout the input file has), only general.file_type becomes 0 (ALL_F32).
OUT is written to a temporary file beside it and renamed into place.
--check loads both files with llama-cpp-python and compares greedy text.
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

SKIP_KEYS = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}


def field_value(field):
    """Raw value of a metadata field; strings stay bytes so nothing is re-encoded."""
    main = field.types[0]
    if main == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]])
    if main != GGUFValueType.ARRAY:
        return field.contents()
    sub = field.types[-1]
    if len(field.types) != 2:
        raise ValueError(f"{field.name}: nested arrays are not supported")
    if sub == GGUFValueType.STRING:
        return [bytes(field.parts[i]) for i in field.data]
    return field.contents()


def convert(src, dst):
    reader = GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    tmp = f"{dst}.tmp{os.getpid()}"
    writer = GGUFWriter(tmp, arch)
    align = reader.get_field("general.alignment")
    if align is not None:
        writer.data_alignment = int(align.contents())
    for name, field in reader.fields.items():
        if name in SKIP_KEYS:
            continue
        if name == "general.file_type":
            writer.add_key_value(name, 0, GGUFValueType.UINT32)  # LLAMA_FTYPE_ALL_F32
            continue
        sub = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field_value(field), field.types[0], sub_type=sub)
    if reader.get_field("general.file_type") is None:
        writer.add_key_value("general.file_type", 0, GGUFValueType.UINT32)

    for t in reader.tensors:
        ne = [int(x) for x in t.shape]  # GGUF order: ne[0] is the innermost dimension
        data = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        data = np.ascontiguousarray(data.reshape(tuple(reversed(ne))))
        writer.add_tensor(t.name, data)
        print(f"{t.name:40s} {t.tensor_type.name:6s} -> F32 {ne}", file=sys.stderr)

    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def greedy_text(path, prompt, n=32):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=256, n_threads=2, verbose=False)
    out = llm.create_completion(prompt, max_tokens=n, temperature=0.0, top_k=1)
    return out["choices"][0]["text"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--check", action="store_true", help="compare greedy text of IN and OUT with llama-cpp-python")
    args = ap.parse_args()
    convert(args.src, args.dst)
    types = {t.tensor_type for t in GGUFReader(args.dst).tensors}
    assert types == {GGMLQuantizationType.F32}, types
    print(f"wrote {args.dst} ({os.path.getsize(args.dst) / 2**20:.1f} MiB)")
    if args.check:
        prompt = "The capital of France is"
        a, b = greedy_text(args.src, prompt), greedy_text(args.dst, prompt)
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"IN : {prompt}{a!r}\nOUT: {prompt}{b!r}")
        print(f"identical: {a == b}; first {same} characters agree (quantized vs F32 kernels may drift)")


if __name__ == "__main__":
    main()
