#!/usr/bin/env python3
"""llama_ref.py - an independent float64 Llama reference for ringattn's export
and import (docs/design.md section 14), with nothing but the standard library
and numpy: its own safetensors reader and writer (json + struct), its own
Llama forward in float64 with Hugging Face's half-split RoPE (rotate_half).

  llama_ref.py make DIR [--seed S] [--dtype F32|F16|BF16] [--shards K] [--tied]
                        [--set KEY=JSON]... [--drop NAME] [--extra NAME]
                        [--nan NAME] [--reshape NAME] [--head random|same]
      a random Llama model: DIR/config.json and DIR/model.safetensors (or K
      shards and model.safetensors.index.json); --set changes a config.json
      key, the others break a tensor (for the refusal tests); --head writes
      lm_head.weight even when tied (random, or a copy of the embedding)
  llama_ref.py logits DIR TOKENS OUT
      logits [n][V] (float64, raw little-endian) of the token ids in TOKENS
  llama_ref.py compare RA REF [--tol T]
      RA (float32 from tests/ref/ra_logits) against REF (float64):
      prints max |RA - REF| / max |REF|; exit 1 above T (default 1e-5)
  llama_ref.py loss DIR FILE L
      mean cross-entropy (nats) over the consecutive windows of L bytes of
      FILE, as `ringattn eval --data FILE` counts them
  llama_ref.py check-config DIR KEY=JSON...
      config.json holds these values (exit 1 otherwise)
"""
import json
import struct
import sys

import numpy as np

# ---- safetensors -------------------------------------------------------------

SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def read_file(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, t = e["data_offsets"]
        raw = data[b:t]
        shape = tuple(e["shape"])
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: {name}: dtype {e['dtype']} not handled")
        out[name] = a.reshape(shape)
    return out


def read_model(d):
    try:
        with open(f"{d}/model.safetensors.index.json") as f:
            index = json.load(f)
    except FileNotFoundError:
        return read_file(f"{d}/model.safetensors")
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(read_file(f"{d}/{shard}"))
    return out


def to_bf16_bits(a):
    """float64 -> float32 -> bfloat16 bits, round to nearest even."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def encode(a, dtype):
    if dtype == "F32":
        return np.asarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.asarray(a, dtype="<f2").tobytes()
    return to_bf16_bits(a).tobytes()


def write_file(path, tensors, dtype):
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        b = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- the model ------------------------------------------------------------------


def config_of(d):
    with open(f"{d}/config.json") as f:
        return json.load(f)


def forward(W, cfg, toks):
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    eps, theta = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
    n = len(toks)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(q):  # [n][h][D], Hugging Face's rotate_half form: pairs (i, i + D/2)
        q1, q2 = q[..., : D // 2], q[..., D // 2:]
        return np.concatenate([q1 * cos - q2 * sin, q2 * cos + q1 * sin], axis=-1)

    x = W["model.embed_tokens.weight"][np.asarray(toks)]
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = rope((h @ W[p + "self_attn.q_proj.weight"].T).reshape(n, H, D))
        k = rope((h @ W[p + "self_attn.k_proj.weight"].T).reshape(n, Hkv, D))
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(n, Hkv, D)
        k, v = np.repeat(k, H // Hkv, axis=1), np.repeat(v, H // Hkv, axis=1)
        s = np.einsum("ihd,jhd->hij", q, k) / np.sqrt(D)
        s[:, mask] = -np.inf
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hij,jhd->ihd", s, v).reshape(n, H * D)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g, u = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    h = rms(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return h @ head.T


# ---- commands -------------------------------------------------------------------


def make(argv):
    d, opts = argv[0], {"--seed": "1", "--dtype": "F32", "--shards": "1"}
    flags, sets, breaks = set(), [], []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--tied":
            flags.add(a)
            i += 1
        elif a == "--set":
            sets.append(argv[i + 1])
            i += 2
        elif a in ("--drop", "--extra", "--nan", "--reshape"):
            breaks.append((a, argv[i + 1]))
            i += 2
        else:
            opts[a] = argv[i + 1]
            i += 2
    rng = np.random.default_rng(int(opts["--seed"]))
    V, C, L, H, Hkv, D, F = 256, 48, 2, 4, 2, 16, 100
    tied = "--tied" in flags
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C,
        "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
        "num_key_value_heads": Hkv, "head_dim": D, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": None, "vocab_size": V, "max_position_embeddings": 2048, "hidden_act": "silu",
        "tie_word_embeddings": tied, "attention_bias": False, "attention_dropout": 0.0,
        "mlp_bias": False, "pretraining_tp": 1, "initializer_range": 0.02, "bos_token_id": 1,
        "eos_token_id": 2, "torch_dtype": "bfloat16", "transformers_version": "4.44.0",
        "use_cache": True, "note_for_the_test": "an unknown key",
    }
    for s in sets:
        k, v = s.split("=", 1)
        cfg[k] = json.loads(v)

    def g(*shape, std=1.0):
        a = rng.standard_normal(shape) * std
        a.flat[::97] *= 1e-3  # tiny values: F16 subnormals
        return a

    W = {"model.embed_tokens.weight": g(V, C)}
    for l in range(L):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = 1.0 + 0.2 * rng.standard_normal(C)
        W[p + "self_attn.q_proj.weight"] = g(H * D, C, std=C ** -0.5)
        W[p + "self_attn.k_proj.weight"] = g(Hkv * D, C, std=C ** -0.5)
        W[p + "self_attn.v_proj.weight"] = g(Hkv * D, C, std=C ** -0.5)
        W[p + "self_attn.o_proj.weight"] = g(C, H * D, std=(H * D) ** -0.5)
        W[p + "post_attention_layernorm.weight"] = 1.0 + 0.2 * rng.standard_normal(C)
        W[p + "mlp.gate_proj.weight"] = g(F, C, std=C ** -0.5)
        W[p + "mlp.up_proj.weight"] = g(F, C, std=C ** -0.5)
        W[p + "mlp.down_proj.weight"] = g(C, F, std=F ** -0.5)
    W["model.norm.weight"] = 1.0 + 0.2 * rng.standard_normal(C)
    head = opts.get("--head", "default")
    if head == "random" or (head == "default" and not tied):
        W["lm_head.weight"] = g(V, C, std=2 * C ** -0.5)
    elif head == "same":
        W["lm_head.weight"] = W["model.embed_tokens.weight"].copy()
    for kind, name in breaks:
        if kind == "--drop":
            del W[name]
        elif kind == "--extra":
            W[name] = np.zeros(4)
        elif kind == "--nan":
            W[name] = W[name].copy()
            W[name].flat[5] = np.nan
        elif kind == "--reshape":
            W[name] = W[name].reshape(W[name].shape[::-1]).copy() if W[name].ndim == 2 else W[name][:-1]
    import os
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/config.json", "w") as f:
        json.dump(cfg, f, indent=2)
    K = int(opts["--shards"])
    if K == 1:
        write_file(f"{d}/model.safetensors", W, opts["--dtype"])
        return 0
    names = list(W)
    wm = {}
    for s in range(K):
        fn = f"model-{s + 1:05d}-of-{K:05d}.safetensors"
        part = {n: W[n] for n in names[s::K]}
        write_file(f"{d}/{fn}", part, opts["--dtype"])
        wm.update({n: fn for n in part})
    with open(f"{d}/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
    return 0


def read_tokens(path):
    with open(path) as f:
        return [int(t) for t in f.read().split()]


def logits(argv):
    d, toks, out = argv
    lg = forward(read_model(d), config_of(d), read_tokens(toks))
    lg.astype("<f8").tofile(out)
    return 0


def compare(argv):
    ra, ref = np.fromfile(argv[0], dtype="<f4").astype(np.float64), np.fromfile(argv[1], dtype="<f8")
    tol = float(argv[argv.index("--tol") + 1]) if "--tol" in argv else 1e-5
    if ra.shape != ref.shape or not np.all(np.isfinite(ra)):
        print(f"compare: {argv[0]} has {ra.size} values ({np.sum(~np.isfinite(ra))} not finite), "
              f"{argv[1]} {ref.size}")
        return 1
    err = np.abs(ra - ref).max() / np.abs(ref).max()
    print(f"max |ringattn - float64 reference| / max |reference| = {err:.3e} (tolerance {tol:g}, "
          f"{ref.size} logits, max |logit| {np.abs(ref).max():.3f})")
    return 0 if err <= tol else 1


def loss(argv):
    d, path, L = argv[0], argv[1], int(argv[2])
    W, cfg = read_model(d), config_of(d)
    data = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    nw = (len(data) - 1) // L
    tot = 0.0
    for w in range(nw):
        toks, tgt = data[w * L:(w + 1) * L], data[w * L + 1:(w + 1) * L + 1]
        lg = forward(W, cfg, list(toks))
        m = lg.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[:, 0]
        tot += float((lse - lg[np.arange(L), tgt]).sum())
    print(f"{tot / (nw * L):.6f}")
    return 0


def check_config(argv):
    cfg, bad = config_of(argv[0]), []
    for kv in argv[1:]:
        k, v = kv.split("=", 1)
        if k not in cfg or cfg[k] != json.loads(v) or type(cfg[k]) is not type(json.loads(v)):
            bad.append(f"{k} = {json.dumps(cfg.get(k))}, expected {v}")
    print("; ".join(bad) if bad else "config.json as expected")
    return 1 if bad else 0


def main():
    cmds = {"make": make, "logits": logits, "compare": compare, "loss": loss, "check-config": check_config}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
