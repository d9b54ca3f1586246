"""llama.cpp baseline of figure 5 (run by `confidant-bench` with the venv of scripts/llama-cpp.sh).

Usage: python llama-bench.py --model GGUF --threads N [--runs R] [--decode D]
                             [--vocab-from GGUF] < prompt_ids.json

A prepared bundle's `model.gguf` carries no tokenizer (the bundle has `tokenizer.json`), and
llama.cpp refuses a GGUF without one: with `--vocab-from`, the driver first writes a temporary
GGUF with the model's metadata and tensors byte for byte plus the `tokenizer.*` metadata of the
given GGUF (the shipped one the bundle was prepared from), and loads that. The weights llama.cpp
runs are then exactly the bundle's.

Reads the prompt's token ids (a JSON list) from stdin. Per run: one evaluation of the whole
prompt (prefill, one batch) and D greedy single-token steps (decode: argmax of the last logits,
end-of-text ignored), timed separately; prints one JSON object with the medians over R runs
(after one untimed warm-up run).
"""

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time

import llama_cpp
import numpy as np


# GGUF metadata value types: fixed sizes; 8 = string, 9 = array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        b = self.data[self.pos : self.pos + n]
        if len(b) != n:
            raise ValueError("truncated GGUF")
        self.pos += n
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> bytes:
        return self.take(self.u64())

    def skip_value(self, vtype: int) -> None:
        if vtype in _FIXED:
            self.take(_FIXED[vtype])
        elif vtype == _STRING:
            self.string()
        elif vtype == _ARRAY:
            etype, n = self.u32(), self.u64()
            if etype in _FIXED:
                self.take(_FIXED[etype] * n)
            else:
                for _ in range(n):
                    self.skip_value(etype)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")


def _parse(path: str):
    """(version, [(key, raw kv bytes)], raw tensor infos, tensor count, data offset, alignment)."""
    with open(path, "rb") as f:
        head = f.read(64 << 20)  # metadata and tensor infos are far smaller
    r = _Reader(head)
    if r.take(4) != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    version = r.u32()
    if version < 2:
        raise ValueError(f"{path}: GGUF v{version} unsupported")
    n_tensors, n_kv = r.u64(), r.u64()
    kvs, alignment = [], 32
    for _ in range(n_kv):
        start = r.pos
        key = r.string().decode()
        vtype = r.u32()
        vstart = r.pos
        r.skip_value(vtype)
        if key == "general.alignment":
            alignment = struct.unpack("<I", head[vstart : vstart + 4])[0]
        kvs.append((key, head[start : r.pos]))
    tstart = r.pos
    for _ in range(n_tensors):
        r.string()
        dims = r.u32()
        r.take(8 * dims + 4 + 8)
    infos = head[tstart : r.pos]
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    return version, kvs, infos, n_tensors, data_offset, alignment


def with_vocab(model: str, vocab_from: str, out_dir: str) -> str:
    """Writes model's metadata and tensors plus vocab_from's tokenizer metadata; returns the path."""
    version, kvs, infos, n_tensors, data_offset, alignment = _parse(model)
    _, vkvs, _, _, _, _ = _parse(vocab_from)
    have = {k for k, _ in kvs}
    merged = kvs + [(k, b) for k, b in vkvs if k.startswith("tokenizer.") and k not in have]
    out = os.path.join(out_dir, "model-with-vocab.gguf")
    with open(model, "rb") as src, open(out, "wb") as dst:
        dst.write(b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(merged)))
        for _, raw in merged:
            dst.write(raw)
        dst.write(infos)
        pad = -dst.tell() % alignment
        dst.write(b"\0" * pad)
        src.seek(data_offset)
        while chunk := src.read(16 << 20):
            dst.write(chunk)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--vocab-from")
    args = ap.parse_args()
    prompt = [int(t) for t in json.load(sys.stdin)]
    if not prompt:
        sys.exit("empty prompt")

    with tempfile.TemporaryDirectory(prefix="confidant-llama-") as tmp:
        model = args.model
        if args.vocab_from:
            model = with_vocab(args.model, args.vocab_from, tmp)
        result = measure(model, prompt, args)
    print(json.dumps(result))


def measure(model: str, prompt: list, args) -> dict:
    llm = llama_cpp.Llama(
        model_path=model,
        n_ctx=max(512, len(prompt) + args.decode + 8),
        n_batch=max(512, len(prompt)),
        n_ubatch=max(512, len(prompt)),
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_gpu_layers=0,
        logits_all=False,
        use_mmap=True,
        verbose=False,
    )

    def run_once(steps):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        prefill = len(prompt) / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(steps):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([nxt])
        decode = steps / (time.perf_counter() - t)
        return prefill, decode

    run_once(4)  # warm-up: page in the weights, size the buffers
    prefill, decode = [], []
    for _ in range(max(1, args.runs)):
        p, d = run_once(args.decode)
        prefill.append(p)
        decode.append(d)
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "prompt_tokens": len(prompt),
        "decode_steps": args.decode,
        "runs": len(prefill),
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
    }


if __name__ == "__main__":
    main()
