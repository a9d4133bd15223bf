#!/usr/bin/python3
"""tokenize_corpus.py - train a SentencePiece BPE tokenizer on a text corpus and
write the corpus as token ids for `ringattn train` (data.source = tokens).

Needs Debian's SentencePiece and NumPy for the system Python:

    apt-get install -y python3-sentencepiece python3-numpy

and runs with /usr/bin/python3 (the shebang), which sees them; a pyenv or
virtualenv python3 usually does not.

usage: tokenize_corpus.py --input FILE_OR_DIR [FILE_OR_DIR ...] --vocab-size N
                          --out DIR [--val-fraction 0.01] [--format bin|npy]

Every input file is one document (a directory: every regular file under it,
in sorted order, hidden ones and files that are not UTF-8 text skipped). The
tokenizer is BPE with byte fallback and identity normalisation, so decoding
gives back the text byte for byte (newlines included); documents are
separated by the end-of-sequence id. The last --val-fraction of the ids is
held out. Writes, each atomically (DIR/NAME.tmp, then renamed):

    DIR/tokenizer.model  the SentencePiece model (detokenize.py reads it)
    DIR/tokenizer.vocab  its pieces, one per line
    DIR/train.bin        flat little-endian ids: uint16 when N <= 65536,
    DIR/val.bin          else uint32 (--format npy: train.npy, val.npy)
    DIR/meta.json        vocab size, dtype, counts, and the ringattn keys

and prints the keys to train on them, e.g.

    --set data.source=tokens --set data.dtype=uint16 --set model.vocab=N
    --set data.path=DIR/train.bin --set data.val_path=DIR/val.bin
"""
import argparse
import json
import os
import sys
import tempfile

try:
    import numpy as np
    import sentencepiece as spm
except ImportError as e:  # pragma: no cover - a message, not a traceback
    sys.exit("tokenize_corpus.py: %s; install Debian's packages: apt-get install -y python3-sentencepiece "
             "python3-numpy, and run with /usr/bin/python3" % e)


def fail(msg):
    sys.exit("tokenize_corpus.py: " + msg)


def corpus_files(inputs, out_dir):
    """The documents: files as given, directories walked in sorted order."""
    out_real = os.path.realpath(out_dir)
    files = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                 and os.path.realpath(os.path.join(root, d)) != out_real)
                for n in sorted(names):
                    p = os.path.join(root, n)
                    if not n.startswith(".") and os.path.isfile(p):
                        files.append(p)
        elif os.path.isfile(item):
            files.append(item)
        else:
            fail("--input %s: not a regular file or directory" % item)
    return files


def read_text(path):
    """The file as text, or None (with a warning) when it is not UTF-8 text."""
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data:
        print("tokenize_corpus.py: skipping %s: binary (NUL bytes)" % path, file=sys.stderr)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        print("tokenize_corpus.py: skipping %s: not UTF-8 (%s)" % (path, e), file=sys.stderr)
        return None


def atomic_write(path, write):
    """write(file) into path.tmp, fsync, rename over path."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_ids(path, ids, fmt):
    if fmt == "npy":
        atomic_write(path, lambda f: np.save(f, ids, allow_pickle=False))
    else:
        atomic_write(path, lambda f: f.write(ids.astype(ids.dtype.newbyteorder("<")).tobytes()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", nargs="+", required=True, help="text files or directories")
    ap.add_argument("--vocab-size", type=int, required=True, help="tokenizer vocabulary size (model.vocab)")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--val-fraction", type=float, default=0.01, help="held-out tail of the ids (0: none)")
    ap.add_argument("--format", choices=["bin", "npy"], default="bin",
                    help="bin: flat little-endian (nanoGPT's train.bin); npy: 1-D .npy")
    ap.add_argument("--max-sentences", type=int, default=1000000,
                    help="lines SentencePiece samples for training (the encoding covers everything)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="SentencePiece training threads")
    a = ap.parse_args()
    if a.vocab_size < 300 or a.vocab_size > 262144:
        fail("--vocab-size %d: use 300 to 262144 (byte fallback takes 256 ids, and ringattn's model.vocab "
             "stops at 262144)" % a.vocab_size)
    if not 0 <= a.val_fraction < 1:
        fail("--val-fraction %g: must be in [0, 1)" % a.val_fraction)
    os.makedirs(a.out, exist_ok=True)
    files = corpus_files(a.input, a.out)
    texts = []
    for p in files:
        t = read_text(p)
        if t:
            texts.append((p, t))
    if not texts:
        fail("no text in %s" % " ".join(a.input))
    nbytes = sum(len(t.encode("utf-8")) for _, t in texts)

    # SentencePiece trains on lines; one temporary file holds the corpus
    prefix = os.path.join(a.out, "tokenizer")
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", dir=a.out, delete=False) as tf:
        for _, t in texts:
            tf.write(t if t.endswith("\n") else t + "\n")
        corpus = tf.name
    try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix + ".tmp", vocab_size=a.vocab_size, model_type="bpe",
            character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=False, split_digits=True,
            user_defined_symbols=["\n"], max_sentence_length=1 << 16, input_sentence_size=a.max_sentences,
            shuffle_input_sentence=True, num_threads=max(1, a.threads), minloglevel=2)
    except (RuntimeError, OSError) as e:
        fail("SentencePiece could not train a %d-piece tokenizer on %d bytes: %s" % (a.vocab_size, nbytes, e))
    finally:
        os.unlink(corpus)
    for ext in ("model", "vocab"):
        os.replace(prefix + ".tmp." + ext, prefix + "." + ext)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    if sp.vocab_size() != a.vocab_size:
        fail("the tokenizer has %d pieces, not %d" % (sp.vocab_size(), a.vocab_size))

    dtype = np.uint16 if a.vocab_size <= 65536 else np.uint32
    parts = []
    for _, t in texts:
        parts.append(np.asarray(sp.encode(t), dtype=dtype))
        parts.append(np.asarray([sp.eos_id()], dtype=dtype))  # the end of each document
    ids = np.concatenate(parts)
    n_val = int(round(len(ids) * a.val_fraction)) if a.val_fraction > 0 else 0
    if a.val_fraction > 0 and (n_val < 1 or n_val >= len(ids)):
        fail("--val-fraction %g of %d ids leaves %d held out" % (a.val_fraction, len(ids), n_val))
    train, val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]
    ext = "npy" if a.format == "npy" else "bin"
    train_path = os.path.join(a.out, "train." + ext)
    val_path = os.path.join(a.out, "val." + ext)
    save_ids(train_path, train, a.format)
    if n_val:
        save_ids(val_path, val, a.format)
    dt = "uint16" if dtype == np.uint16 else "uint32"
    keys = {"data.source": "tokens", "data.dtype": dt if a.format == "bin" else "npy",
            "model.vocab": a.vocab_size, "data.path": train_path}
    if n_val:
        keys["data.val_path"] = val_path
    meta = {
        "vocab_size": a.vocab_size, "dtype": dt, "format": a.format, "tokenizer": "tokenizer.model",
        "train": os.path.basename(train_path), "val": os.path.basename(val_path) if n_val else None,
        "train_tokens": int(len(train)), "val_tokens": int(len(val)), "documents": len(texts),
        "bytes": nbytes, "eos_id": sp.eos_id(), "bos_id": sp.bos_id(), "unk_id": sp.unk_id(),
        "ringattn": keys,
    }
    atomic_write(os.path.join(a.out, "meta.json"),
                 lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode("utf-8")))
    print("tokenize_corpus: %d documents, %d bytes -> %d ids (%.2f bytes/id): %d train, %d held out; %s %s"
          % (len(texts), nbytes, len(ids), nbytes / max(1, len(ids)), len(train), len(val), dt, a.format))
    print("train with: " + " ".join("--set %s=%s" % (k, v) for k, v in keys.items()))


if __name__ == "__main__":
    main()
