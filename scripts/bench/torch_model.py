#!/usr/bin/python3
"""torch_model.py - ringattn's decoder-only transformer in PyTorch (CPU),
timed for training throughput: the reference for `bench train`.

Same architecture, so the same FLOPs (docs/design.md §7): byte vocabulary, token
embedding E [V, C]; each layer pre-norm
    x += Wo attn(rope(Wq h), rope(Wk h), Wv h),  h = rmsnorm(x)
    x += W2 (silu(W1 h) * W3 h)                  h = rmsnorm(x)   (SwiGLU)
         W2 gelu_tanh(W1 h)                                        (--ffn gelu)
final rmsnorm, logits = h E^T (tied) or h W_out (--untied). RMSNorm with a
gain (eps 1e-5), no biases, grouped-query attention (Hkv kv heads shared by
H/Hkv query heads), RoPE theta 10000 on interleaved pairs (2i, 2i+1), causal.
Loss: mean next-byte cross-entropy; AdamW(3e-4, (0.9, 0.95), wd 0.01), clip 1.
Attention is F.scaled_dot_product_attention(is_causal=True) (torch >= 2.0);
Debian 12's torch 1.13 has only its private predecessor, the same math
(scores, mask, softmax: O(L^2) memory, about 16 GiB at configs/10m.ini).
The script re-executes itself once with glibc malloc on transparent huge
pages (see reexec_with_huge_pages; --no-malloc-tuning to skip).

Data are random bytes: this measures speed only. Each step (forward,
backward, clip, optimizer) is timed after --warmup steps; the last line is
machine readable:
    torch: tokens_per_s=<median> step_ms=<median> params=<count> threads=<T>

Example:
    /usr/bin/python3 scripts/bench/torch_model.py --dim 256 --layers 4 --heads 4 \
        --seq-len 2048 --batch 1 --steps 5 --threads 1
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


HUGETLB = "glibc.malloc.hugetlb=1"


def reexec_with_huge_pages():
    """Run this script again with glibc malloc asking for transparent huge
    pages (GLIBC_TUNABLES glibc.malloc.hugetlb=1, glibc >= 2.35; read only at
    start-up, hence the exec). PyTorch's CPU allocator does not cache: each
    step allocates its activations afresh (the L x L attention scores are
    tens of MiB to GiB), glibc maps and unmaps such blocks, and every 4 KiB
    page faults and is zeroed again on first touch; on a VM that costs more
    than the arithmetic on it. With 2 MiB pages the faults are 512 times
    fewer, and freed memory still goes back to the kernel. ringattn
    allocates once, so the baseline should not pay the faults either.
    No-op when the tunable is already set; --no-malloc-tuning turns it off."""
    tun = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tun:
        return
    os.environ["GLIBC_TUNABLES"] = f"{tun}:{HUGETLB}" if tun else HUGETLB
    sys.stdout.flush()
    try:
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    except OSError:
        pass  # run on without


def swiglu_width(dim):
    """Default SwiGLU width: 8C/3 rounded up to a multiple of 8."""
    return ((8 * dim) // 3 + 7) // 8 * 8


def rope_tables(seq_len, head_dim, theta=10000.0):
    """cos, sin [L, D/2] of angle pos * theta^(-2i/D), computed in float64."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    freq = torch.exp(-2.0 * i / head_dim * math.log(theta))
    angle = torch.arange(seq_len, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(angle).float(), torch.sin(angle).float()


def rope(x, cos, sin):
    """Rotate the interleaved pairs (2i, 2i+1) of x [B, nh, L, D] by the
    position angles: (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.gain


def causal_attention(q, k, v, scale):
    """q [B, H, L, D], k and v [B, Hkv, L, D] -> [B, H, L, D], causal."""
    H, Hkv = q.shape[1], k.shape[1]
    sdpa = getattr(F, "scaled_dot_product_attention", None)  # torch >= 2.0
    if sdpa is not None and H != Hkv:
        try:
            return sdpa(q, k, v, is_causal=True, scale=scale, enable_gqa=True)  # torch >= 2.5
        except TypeError:
            pass
    if H != Hkv:
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    if sdpa is not None:
        try:
            return sdpa(q, k, v, is_causal=True, scale=scale)
        except TypeError:  # torch 2.0-2.0.x: no scale argument
            pass
    if scale == 1.0 / math.sqrt(q.shape[-1]):
        # torch 2.0 without scale=, or torch 1.13 (Debian 12), whose private
        # version computes the same thing; both scale by 1/sqrt(D)
        fn = sdpa or getattr(F, "_scaled_dot_product_attention", None)
        if fn is not None:
            o = fn(q, k, v, is_causal=True)
            return o[0] if isinstance(o, tuple) else o  # 1.13 returns (O, weights)
    # last resort, written out: an additive mask (masked_fill's backward is slower)
    L = q.shape[2]
    mask = torch.full((L, L), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    s = torch.matmul(q * scale, k.transpose(-2, -1)) + mask
    return torch.matmul(torch.softmax(s, dim=-1), v)


class Block(nn.Module):
    def __init__(self, dim, heads, kv_heads, head_dim, ffn, ffn_dim):
        super().__init__()
        self.H, self.Hkv, self.D = heads, kv_heads, head_dim
        self.attn_norm = RMSNorm(dim)
        self.wq = nn.Linear(dim, heads * head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.wv = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.wo = nn.Linear(heads * head_dim, dim, bias=False)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = ffn
        self.w1 = nn.Linear(dim, ffn_dim, bias=False)
        self.w3 = nn.Linear(dim, ffn_dim, bias=False) if ffn == "swiglu" else None
        self.w2 = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, L, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, L, self.H, self.D).transpose(1, 2)
        k = self.wk(h).view(B, L, self.Hkv, self.D).transpose(1, 2)
        v = self.wv(h).view(B, L, self.Hkv, self.D).transpose(1, 2)
        o = causal_attention(rope(q, cos, sin), rope(k, cos, sin), v, 1.0 / math.sqrt(self.D))
        x = x + self.wo(o.transpose(1, 2).reshape(B, L, self.H * self.D))
        h = self.ffn_norm(x)
        if self.ffn == "swiglu":
            u = F.silu(self.w1(h)) * self.w3(h)
        else:
            u = F.gelu(self.w1(h), approximate="tanh")
        return x + self.w2(u)


class Transformer(nn.Module):
    def __init__(self, vocab, dim, layers, heads, kv_heads, head_dim, ffn, ffn_dim, seq_len,
                 tied=True, init_std=0.02):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(
            Block(dim, heads, kv_heads, head_dim, ffn, ffn_dim) for _ in range(layers))
        self.final_norm = RMSNorm(dim)
        self.head = None if tied else nn.Linear(dim, vocab, bias=False)
        cos, sin = rope_tables(seq_len, head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        # ringattn's initialisation: N(0, std); residual outputs std / sqrt(2 layers)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                out = name.endswith("wo.weight") or name.endswith("w2.weight")
                nn.init.normal_(p, std=init_std / math.sqrt(2 * layers) if out else init_std)

    def forward(self, tokens):
        L = tokens.shape[1]
        x = self.emb(tokens)
        cos, sin = self.cos[:L], self.sin[:L]
        for block in self.blocks:
            x = block(x, cos, sin)
        h = self.final_norm(x)
        return self.head(h) if self.head is not None else h @ self.emb.weight.t()


def attention_bytes(a):
    """Rough peak memory of the L x L attention matrices: one saved per
    layer for the backward plus about three in flight (measured at
    configs/10m.ini: estimate 13.5 GiB, peak RSS 15.8 GiB)."""
    return (a.layers + 3) * a.batch * a.heads * a.seq_len ** 2 * 4


def mem_available():
    """MemAvailable from /proc/meminfo in bytes, or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def model_flops(a, ffn_dim, B):
    """Model FLOPs of one training step, as ringattn counts them: 6 per
    parameter of the matmuls and token, plus 3x the causal attention forward."""
    C, HD, KD = a.dim, a.heads * a.head_dim, a.kv_heads * a.head_dim
    ffn = (3 if a.ffn == "swiglu" else 2) * C * ffn_dim
    matmul = a.layers * (2 * C * HD + 2 * C * KD + ffn) + C * a.vocab
    attn = a.layers * 4.0 * a.heads * a.head_dim * a.seq_len * a.seq_len * 0.5 * B
    return 6.0 * matmul * B * a.seq_len + 3.0 * attn


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dim", type=int, default=256, help="model width C")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4, help="query heads H")
    p.add_argument("--kv-heads", type=int, default=0, help="key/value heads Hkv (0: = heads)")
    p.add_argument("--head-dim", type=int, default=0, help="head dimension D (0: dim / heads)")
    p.add_argument("--ffn", choices=("swiglu", "gelu"), default="swiglu")
    p.add_argument("--ffn-dim", type=int, default=0,
                   help="FFN width F (0: 4C for gelu, round_up(8C/3, 8) for swiglu)")
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--untied", action="store_true", help="separate output head (default: tied to E)")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence L")
    p.add_argument("--batch", type=int, default=1, help="sequences per step B")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory-check", action="store_true",
                   help="run even when the attention matrices look larger than MemAvailable")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="no transparent huge pages for malloc (see reexec_with_huge_pages)")
    a = p.parse_args(argv)
    a.kv_heads = a.kv_heads or a.heads
    if a.head_dim == 0:
        if a.dim % a.heads:
            p.error(f"--dim {a.dim} is not divisible by --heads {a.heads}; give --head-dim")
        a.head_dim = a.dim // a.heads
    for name in ("dim", "layers", "heads", "kv_heads", "head_dim", "vocab", "seq_len", "batch",
                 "steps", "threads"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if a.warmup < 0 or a.ffn_dim < 0:
        p.error("--warmup and --ffn-dim must not be negative")
    if a.heads % a.kv_heads:
        p.error(f"--kv-heads {a.kv_heads} does not divide --heads {a.heads}")
    if a.head_dim % 2:
        p.error(f"RoPE needs an even head dimension (got {a.head_dim})")
    return a


def main(argv=None):
    a = parse_args(argv)
    need, avail = attention_bytes(a), mem_available()
    if not a.no_memory_check and avail is not None and need > avail:
        print(f"torch_model.py: error: the L x L attention matrices need about {need / 2**30:.1f} GiB "
              f"(layers + 3 of B*H*L^2 floats), more than the {avail / 2**30:.1f} GiB available; "
              "use a smaller --seq-len (or --no-memory-check)", file=sys.stderr)
        return 1
    if not a.no_malloc_tuning and __name__ == "__main__":
        reexec_with_huge_pages()
    huge = HUGETLB in os.environ.get("GLIBC_TUNABLES", "")
    torch.set_num_interop_threads(1)  # before any parallel work
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ffn_dim = a.ffn_dim or (swiglu_width(a.dim) if a.ffn == "swiglu" else 4 * a.dim)

    model = Transformer(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.head_dim, a.ffn,
                        ffn_dim, a.seq_len, tied=not a.untied)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.01)
    # random bytes; L + 1 per sequence so inputs and next-byte targets both have L
    data = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1))
    tokens, targets = data[:, :-1], data[:, 1:]
    print(f"# torch {torch.__version__}: {params} parameters, {a.layers} layers, dim {a.dim}, "
          f"heads {a.heads}/{a.kv_heads} x {a.head_dim}, ffn {a.ffn} {ffn_dim}, "
          f"{'untied' if a.untied else 'tied'}, L={a.seq_len}, batch {a.batch}, "
          f"threads {a.threads}, float32, malloc {HUGETLB if huge else 'default'}",
          flush=True)

    times = []
    for it in range(a.warmup + a.steps):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if it >= a.warmup:
            times.append(dt)
        print(f"# step {it + 1 - a.warmup if it >= a.warmup else 'warmup'}: "
              f"{dt * 1e3:.1f} ms, loss {loss.item():.4f}, page faults "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}", flush=True)

    step = statistics.median(times)
    tps = a.batch * a.seq_len / step
    print(f"# model GFLOP/s {model_flops(a, ffn_dim, a.batch) / step * 1e-9:.2f} "
          f"(ringattn's count), min step {min(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms")
    print(f"torch: tokens_per_s={tps:.3f} step_ms={step * 1e3:.3f} params={params} "
          f"threads={a.threads}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
