#!/usr/bin/env python3
"""check_trace.py FILE --ranks P --kind attn|train|failed [--steps N --layers N]
[--pieces N] [--backward --kv-groups G]: validate a `ringattn ... --trace FILE` file.

Checked for every kind: the file is JSON with traceEvents, displayTimeUnit
and otherData (one entry per rank: offset, rtt, counts); every rank has its
process_name "rank R (host)" and thread names; every span has dur >= 0 and
ts >= 0; within a track (pid, tid) timestamps never decrease in file order
and spans nest (none ends inside another and starts before it).
attn: per rank, (P-1) K/V sends and receives (tag 11) per piece per ring
pass, each to the right / from the left neighbour with bytes > 0, and P x
pieces compute steps per pass; with --backward the dK/dV partials (tag 12)
likewise, except the last hop, sent in min(4, G) parts (G = B x Hkv, the
(sequence, kv head) groups: design.md §4.2). train: a train step, an optimizer step and layer backward spans
per step, evaluation, checkpoint writes; P > 1: gradient reductions and
their wait. failed: status says so and rank 0 holds at least one span.
Prints one line per failed check, exits 1 if any."""
import argparse
import json
import sys
from collections import Counter, defaultdict

EPS = 0.0015  # microseconds: rounding of the printed ns digits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--kind", choices=["attn", "train", "failed"], required=True)
    ap.add_argument("--pieces", type=int, default=1)
    ap.add_argument("--kv-groups", type=int, default=1)
    ap.add_argument("--backward", action="store_true")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--layers", type=int, default=0)
    a = ap.parse_args()
    errors = []

    def check(cond, msg):
        if not cond:
            errors.append(msg)

    try:
        with open(a.file, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: {a.file}: not readable JSON: {e}")
        return 1
    P = a.ranks
    evs = d.get("traceEvents")
    check(isinstance(evs, list) and evs, "no traceEvents list")
    check(d.get("displayTimeUnit") == "ms", "displayTimeUnit is not ms")
    other = d.get("otherData", {})
    ranks = other.get("ranks", [])
    check(len(ranks) == P, f"otherData.ranks has {len(ranks)} entries, expected {P}")
    for r in ranks:
        check(r.get("rtt_us", -1) >= 0, f"rank {r.get('rank')}: rtt_us {r.get('rtt_us')}")
        check(r.get("dropped_events") == 0, f"rank {r.get('rank')}: {r.get('dropped_events')} dropped events")
        if P > 1 and r.get("rank", 0) > 0:
            check(r.get("rtt_us", 0) > 0, f"rank {r['rank']}: no round trip measured")
    evs = evs or []
    pnames = {e["pid"]: e["args"]["name"] for e in evs if e.get("ph") == "M" and e.get("name") == "process_name"}
    tnames = {(e["pid"], e["tid"]) for e in evs if e.get("ph") == "M" and e.get("name") == "thread_name"}
    for r in range(P):
        check(pnames.get(r, "").startswith(f"rank {r} ("), f"rank {r}: process_name {pnames.get(r)!r}")
    spans = [e for e in evs if e.get("ph") == "X"]
    check(all(e["pid"] in range(P) for e in evs), "an event's pid is not a rank")
    tracks = defaultdict(list)
    for e in evs:
        if e.get("ph") in ("X", "i", "C"):
            tracks[(e["pid"], e["tid"])].append(e)
            check((e["pid"], e["tid"]) in tnames, f"track {(e['pid'], e['tid'])} has no thread_name")
    for key, lst in tracks.items():
        last = -1.0
        stack = []
        for e in lst:
            if e["ts"] < 0 or e["ts"] < last:
                errors.append(f"track {key}: ts {e['ts']} after {last} (not monotone) at {e['name']}")
                break
            last = e["ts"]
            if e["ph"] != "X":
                continue
            if e["dur"] < 0:
                errors.append(f"track {key}: {e['name']} has dur {e['dur']}")
            end = e["ts"] + e["dur"]
            while stack and stack[-1] <= e["ts"] + EPS:
                stack.pop()
            if stack and end > stack[-1] + EPS:
                errors.append(f"track {key}: {e['name']} at {e['ts']} ends at {end}, after its parent ({stack[-1]})")
                break
            stack.append(end)

    count = defaultdict(Counter)  # rank -> name -> n
    for e in spans:
        count[e["pid"]][e["name"]] += 1

    if a.kind == "attn":
        passes = 2 if a.backward else 1
        for r in range(P):
            c = count[r]
            check(c["fwd step"] == P * a.pieces, f"rank {r}: {c['fwd step']} fwd steps, expected {P * a.pieces}")
            check(c["ring forward"] == 1, f"rank {r}: {c['ring forward']} ring forward spans")
            if a.backward:
                check(c["bwd step"] == P * a.pieces, f"rank {r}: {c['bwd step']} bwd steps")
            for kind, peer in (("ring send", (r + 1) % P), ("ring recv", (r - 1) % P)):
                mine = [e for e in spans if e["pid"] == r and e["name"] == kind]
                kv = [e for e in mine if e["args"]["tag"] == 11]
                dkv = [e for e in mine if e["args"]["tag"] == 12]
                want = (P - 1) * a.pieces
                check(len(kv) == passes * want, f"rank {r}: {len(kv)} K/V {kind}s, expected {passes * want}")
                want_dkv = want - 1 + min(4, a.kv_groups) if P > 1 else 0
                check(len(dkv) == (want_dkv if a.backward else 0),
                      f"rank {r}: {len(dkv)} dK/dV {kind}s, expected {want_dkv if a.backward else 0}")
                check(all(e["args"]["peer"] == peer and e["args"]["bytes"] > 0 for e in mine),
                      f"rank {r}: a {kind} has the wrong peer or no bytes")
            check(c["ring wait"] >= passes * a.pieces * (P - 1), f"rank {r}: {c['ring wait']} ring waits")
    elif a.kind == "train":
        check(other.get("status") == "ok", f"status {other.get('status')!r}")
        for r in range(P):
            c = count[r]
            check(c["train step"] == a.steps, f"rank {r}: {c['train step']} train steps, expected {a.steps}")
            check(c["adamw step"] == a.steps, f"rank {r}: {c['adamw step']} optimizer steps")
            check(c["layer backward"] == a.steps * a.layers, f"rank {r}: {c['layer backward']} layer backward spans")
            check(c["layer forward"] >= a.steps * a.layers, f"rank {r}: {c['layer forward']} layer forward spans")
            check(c["lm head + loss (fwd+bwd)"] == a.steps, f"rank {r}: {c['lm head + loss (fwd+bwd)']} LM head spans")
            check(c["evaluation"] >= 1, f"rank {r}: no evaluation span")
            check(c["checkpoint write"] >= 1, f"rank {r}: no checkpoint write span")
            check(c["fwd step"] >= a.steps * a.layers * P, f"rank {r}: {c['fwd step']} ring fwd steps")
            if P > 1:
                # one reduction of every parameter a step, after the backward (train.overlap_reduce: one a slice)
                check(c["grad allreduce"] == a.steps, f"rank {r}: {c['grad allreduce']} reductions, expected {a.steps}")
                check(c["grad wait"] == a.steps, f"rank {r}: {c['grad wait']} gradient waits")
                check(c["ring send"] > 0 and c["ring recv"] > 0, f"rank {r}: no ring transfers")
    else:
        check(str(other.get("status", "")).startswith("failed"), f"status {other.get('status')!r}, expected failed")
        check(sum(count[0].values()) > 0, "rank 0 recorded no span")

    for e in errors[:20]:
        print(f"FAIL: {a.file}: {e}")
    if not errors:
        print(f"ok: {a.file}: {len(evs)} events, {P} ranks, {a.kind}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
