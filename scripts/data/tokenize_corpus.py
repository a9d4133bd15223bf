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
in sorted order, hidden ones, files that are not UTF-8 text and DIR itself
skipped; a file reached twice, e.g. through a symlink, counts once). The tokenizer is BPE with byte fallback and identity normalisation,
so decoding gives back the text byte for byte (newlines included); documents
are separated by the end-of-sequence id. The last --val-fraction of the ids
is held out. Writes

    DIR/tokenizer.model  the SentencePiece model (detokenize.py reads it)
    DIR/tokenizer.vocab  its pieces, one per line
    DIR/train.bin        flat little-endian ids: uint16 when N <= 65536,
    DIR/val.bin          else uint32 (--format npy: train.npy, val.npy)
    DIR/meta.json        vocab size, dtype, counts, and the ringattn keys

and prints the keys to train on them, e.g.

    --set data.source=tokens --set data.dtype=uint16 --set model.vocab=N
    --set data.path=DIR/train.bin --set data.val_path=DIR/val.bin

All or nothing up to the renames: every file goes to DIR/NAME.tmp first, and
they are renamed into place together once every check has passed; a run
that fails before them removes its .tmp files and leaves an earlier run's
output as it was. The old meta.json is removed before the first rename and
the new one renamed last, so a failure (or a kill) during the renames leaves
DIR without meta.json - never a meta.json over a mixed set - and a rerun
replaces it (DIR/.tokenize_corpus-incomplete marks such a set as this
script's until a run completes). A rerun removes the earlier run's id files
that it does not write itself (val.bin after --val-fraction 0, train.bin and
val.bin after --format npy), so DIR always holds one run. DIR (and missing
parents) is created only once the inputs have been read, and removed again
if the run then fails.

One run at a time per DIR: a run holds an exclusive flock on DIR itself
(no lock file) from before its first temporary file, and a second run into
the same DIR is refused at once. Temporaries a killed run left behind (the
hidden corpus copy DIR/.tokenize_corpus-corpus-*.txt and the .tmp names
above) are removed by the next run into DIR.

Refused before anything is written: a DIR that is an input or holds one
(compared as real paths, so symlinks count; a DIR inside an input directory
is fine, the walk skips it), a DIR that exists but is not a directory, and a
DIR that holds any of the names above but no meta.json of this script's
(one with "ringattn" and "tokenizer" keys) nor its incomplete marker: a rerun
replaces its own output, never someone else's files.
"""
import argparse
import errno
import fcntl
import glob
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

# every name the script writes into DIR (a DIR holding one of them must hold our meta.json)
OUTPUTS = ("tokenizer.model", "tokenizer.vocab", "train.bin", "val.bin", "train.npy", "val.npy", "meta.json")
# hidden (the walk skips it, so no later run reads it as a document) and fixed, so a rerun finds a killed run's copy
CORPUS_PREFIX = ".tokenize_corpus-corpus-"
# present while the renames run: outputs without meta.json beside it are this script's, for a rerun to replace
INCOMPLETE = ".tokenize_corpus-incomplete"


def fail(msg):
    sys.exit("tokenize_corpus.py: " + msg)


def own_meta(path):
    """Whether path is a meta.json this script wrote."""
    if not os.path.isfile(path):  # a FIFO would block the open
        return False
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and "ringattn" in m and "tokenizer" in m


def check_out(out, inputs):
    """Refuse an --out whose outputs would replace an input or files this script did not write."""
    out_real = os.path.realpath(out)
    inside = out_real.rstrip(os.sep) + os.sep
    for item in inputs:
        r = os.path.realpath(item)
        if r == out_real:
            fail("--out %s is the input %s; choose another directory" % (out, item))
        if r.startswith(inside):
            fail("--out %s holds the input %s; choose another directory" % (out, item))
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        fail("--out %s: exists and is not a directory" % out)
    present = [n for n in OUTPUTS if os.path.lexists(os.path.join(out, n))]
    for n in present:
        p = os.path.join(out, n)
        if not (os.path.islink(p) or os.path.isfile(p)):  # os.replace cannot put a file over a directory
            fail("--out %s: %s is not a regular file" % (out, p))
    if present and not own_meta(os.path.join(out, "meta.json")) and not os.path.isfile(os.path.join(out, INCOMPLETE)):
        fail("--out %s: refusing to replace %s: no meta.json of tokenize_corpus.py's there says it wrote them; "
             "move them or choose another directory" % (out, ", ".join(os.path.join(out, n) for n in present)))


def corpus_files(inputs, out_dir):
    """The documents: files as given, directories walked in sorted order, each real file once."""
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
    # a directory and a symlink to it (or a file named twice) would count every document twice
    seen, unique = set(), []
    for p in files:
        r = os.path.realpath(p)
        if r not in seen:
            seen.add(r)
            unique.append(p)
    if len(unique) < len(files):
        print("tokenize_corpus.py: skipping %d duplicate file(s) (the same file reached twice, e.g. through a "
              "symlink; the first kept)" % (len(files) - len(unique)), file=sys.stderr)
    return unique


def read_text(path):
    """The file as text, or None (with a warning) when it is not UTF-8 text."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail("--input %s: %s" % (path, e.strerror or e))
    if b"\0" in data:
        print("tokenize_corpus.py: skipping %s: binary (NUL bytes)" % path, file=sys.stderr)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        print("tokenize_corpus.py: skipping %s: not UTF-8 (%s)" % (path, e), file=sys.stderr)
        return None


def make_dir(path):
    """Create path and its missing parents; the directories created, outermost first."""
    made = []
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        made.append(p)
        p = os.path.dirname(p)
    made.reverse()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        remove_dirs(made)
        fail("--out %s: cannot create the directory: %s" % (path, e.strerror or e))
    return made


def remove_dirs(made):
    for d in reversed(made):
        try:
            os.rmdir(d)  # only ever empty: never someone else's files
        except OSError:
            pass


def lock_dir(path):
    """Hold an exclusive flock on the directory path until the process ends; refuse when another run holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            fail("--out %s: another tokenize_corpus.py run is writing there; wait for it to end" % path)
        fail("--out %s: cannot lock the directory: %s" % (path, e.strerror or e))
    return fd  # never closed: the lock ends with the process, even a killed one


def remove_stale(out):
    """Remove the temporaries a killed run left in out (called under the lock: no live run owns them)."""
    stale = glob.glob(os.path.join(glob.escape(out), CORPUS_PREFIX + "*.txt"))
    stale += [os.path.join(out, n + ".tmp") for n in OUTPUTS]
    stale += [os.path.join(out, "tokenizer.tmp." + x) for x in ("model", "vocab")]
    for p in stale:
        if os.path.islink(p) or os.path.isfile(p):
            try:
                os.unlink(p)
            except OSError:
                pass


def new_tmp(path, tmps):
    """Open path for writing as a new file (a leftover or a symlink there is replaced, not written through)."""
    tmps.append(path)
    if os.path.lexists(path):
        os.unlink(path)
    return open(path, "xb")


def write_tmp(path, write, tmps):
    """write(file) into path.tmp, fsync; the pair (path.tmp, path) to rename at the end."""
    tmp = path + ".tmp"
    with new_tmp(tmp, tmps) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return tmp, path


def save_ids(path, ids, fmt, tmps):
    if fmt == "npy":
        return write_tmp(path, lambda f: np.save(f, ids, allow_pickle=False), tmps)
    return write_tmp(path, lambda f: f.write(ids.astype(ids.dtype.newbyteorder("<")).tobytes()), tmps)


def tokenize(a, texts, nbytes, tmps):
    """Train, encode and write everything to .tmp names; the (tmp, final) renames, meta.json last."""
    # SentencePiece trains on lines; one temporary file holds the corpus
    prefix = os.path.join(a.out, "tokenizer")
    for ext in ("model", "vocab"):  # SentencePiece would write through a symlink left there
        tmps.append(prefix + ".tmp." + ext)
        if os.path.lexists(tmps[-1]):
            os.unlink(tmps[-1])
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", prefix=CORPUS_PREFIX, suffix=".txt", dir=a.out,
                                     delete=False) as tf:
        tmps.append(tf.name)
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
    sp = spm.SentencePieceProcessor(model_file=prefix + ".tmp.model")
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
        fail("--val-fraction %s of %d ids leaves %d held out" % (a.val_fraction.text, len(ids), n_val))
    train, val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]
    ext = "npy" if a.format == "npy" else "bin"
    train_path = os.path.join(a.out, "train." + ext)
    val_path = os.path.join(a.out, "val." + ext)
    renames = [(prefix + ".tmp." + x, prefix + "." + x) for x in ("model", "vocab")]
    renames.append(save_ids(train_path, train, a.format, tmps))
    if n_val:
        renames.append(save_ids(val_path, val, a.format, tmps))
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
    renames.append(write_tmp(os.path.join(a.out, "meta.json"),
                             lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode("utf-8")), tmps))
    summary = ("tokenize_corpus: %d documents, %d bytes -> %d ids (%.2f bytes/id): %d train, %d held out; %s %s"
               % (len(texts), nbytes, len(ids), nbytes / max(1, len(ids)), len(train), len(val), dt, a.format))
    return renames, summary, keys


class Fraction(float):
    """A float that keeps the argument as written: %g would print 0.9999999 as 1 in a refusal of it."""
    def __new__(cls, text):
        v = float.__new__(cls, text)
        v.text = text
        return v


Fraction.__name__ = "float"  # argparse's "invalid float value"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", nargs="+", required=True, help="text files or directories")
    ap.add_argument("--vocab-size", type=int, required=True, help="tokenizer vocabulary size (model.vocab)")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--val-fraction", type=Fraction, default="0.01", help="held-out tail of the ids (0: none)")
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
        fail("--val-fraction %s: must be in [0, 1)" % a.val_fraction.text)
    check_out(a.out, a.input)
    files = corpus_files(a.input, a.out)
    texts = []
    for p in files:
        t = read_text(p)
        if t:
            texts.append((p, t))
    if not texts:
        fail("no text in %s" % " ".join(a.input))
    nbytes = sum(len(t.encode("utf-8")) for _, t in texts)

    # nothing exists on disk before this point; from here on a failure undoes the run
    made = make_dir(a.out)
    lock_dir(a.out)  # before any temporary: a concurrent run would mix its files with ours
    tmps = []
    renaming = False
    try:
        remove_stale(a.out)
        renames, summary, keys = tokenize(a, texts, nbytes, tmps)
        marker = os.path.join(a.out, INCOMPLETE)
        if not os.path.isfile(marker):  # (an earlier incomplete run's marker stays until a run completes)
            with new_tmp(marker, tmps) as f:  # in tmps while written: a failure here leaves meta.json vouching
                f.write(b"tokenize_corpus.py was renaming its output here; run it again\n")
                f.flush()
                os.fsync(f.fileno())
            tmps.remove(marker)
        renaming = True
        meta = os.path.join(a.out, "meta.json")
        if os.path.lexists(meta):  # from here until the last rename, no meta.json vouches for a mixed set
            os.unlink(meta)
        for tmp, final in renames[:-1]:
            os.replace(tmp, final)
        written = {os.path.basename(final) for _, final in renames}
        for n in OUTPUTS:  # an earlier run's ids, which need not match this tokenizer
            p = os.path.join(a.out, n)
            if n not in written and os.path.lexists(p):
                os.unlink(p)
        os.replace(*renames[-1])  # meta.json last: it vouches for the others
        del tmps[:]
        try:
            os.unlink(marker)
        except OSError:
            pass  # meta.json is in place: the set is complete either way
    except BaseException as e:
        for p in tmps:
            try:
                os.unlink(p)
            except OSError:
                pass
        remove_dirs(made)
        if isinstance(e, OSError):
            why = "%s: %s" % (e.filename or "--out " + a.out, e.strerror or e)
            if renaming:
                fail("--out %s is incomplete (no meta.json): run again (%s)" % (a.out, why))
            fail(why)
        raise
    print(summary)
    print("train with: " + " ".join("--set %s=%s" % (k, v) for k, v in keys.items()))


if __name__ == "__main__":
    main()
