#!/usr/bin/python3
"""detokenize.py - turn token ids back into text with a SentencePiece model
(the DIR/tokenizer.model that tokenize_corpus.py wrote).

Needs Debian's SentencePiece (and NumPy for binary files):

    apt-get install -y python3-sentencepiece python3-numpy

usage: detokenize.py --tokenizer DIR/tokenizer.model [FILE ...]
       mpirun -n 2 ringattn generate ... --output-format ids | detokenize.py --tokenizer M

Reads ids as text - what `ringattn generate` prints for a vocabulary above
256 (--output-format ids): integers separated by spaces or commas - from each
FILE or standard input, and prints each line decoded (a newline is added
where the text does not end in one). A FILE ending in .npy is read as a 1-D
array of ids; --dtype uint16|uint32 reads FILEs as flat little-endian ids
(train.bin, val.bin). --encode does the reverse: text in, one line of ids
out (a prompt for generate --prompt-tokens).
"""
import argparse
import sys

try:
    import sentencepiece as spm
except ImportError as e:  # pragma: no cover - a message, not a traceback
    sys.exit("detokenize.py: %s; install Debian's package: apt-get install -y python3-sentencepiece, and run "
             "with /usr/bin/python3" % e)


def fail(msg):
    sys.exit("detokenize.py: " + msg)


def parse_ids(line, where, vocab):
    ids = []
    for k, word in enumerate(line.replace(",", " ").split()):
        try:
            v = int(word)
        except ValueError:
            fail("%s: '%s' (item %d) is not a token id" % (where, word[:24], k))
        if not 0 <= v < vocab:
            fail("%s: token %d (item %d) is outside the tokenizer's vocabulary [0, %d)" % (where, v, k, vocab))
        ids.append(v)
    return ids


def binary_ids(path, dtype):
    import numpy as np
    if path.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            fail("%s: not a 1-D array of integers (shape %s, dtype %s)" % (path, arr.shape, arr.dtype))
        return arr.tolist()
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).tolist()


def write(text):
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="the SentencePiece model (DIR/tokenizer.model)")
    ap.add_argument("--dtype", choices=["uint16", "uint32"], help="read FILEs as flat binary ids")
    ap.add_argument("--encode", action="store_true", help="text to ids instead (one line of ids per input)")
    ap.add_argument("files", nargs="*", help="files of ids (default: standard input)")
    a = ap.parse_args()
    try:
        sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    except (OSError, RuntimeError) as e:
        fail("--tokenizer %s: %s" % (a.tokenizer, e))
    vocab = sp.vocab_size()
    sources = a.files or ["-"]
    for src in sources:
        where = "standard input" if src == "-" else src
        if a.encode:
            text = sys.stdin.read() if src == "-" else open(src, encoding="utf-8").read()
            print(" ".join(str(i) for i in sp.encode(text)))
            continue
        if src != "-" and (a.dtype or src.endswith(".npy")):
            ids = binary_ids(src, a.dtype or "uint16")
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                fail("%s: token %d is outside the tokenizer's vocabulary [0, %d)" % (where, bad[0], vocab))
            write(sp.decode(ids))
            continue
        stream = sys.stdin if src == "-" else open(src, encoding="utf-8")
        for n, line in enumerate(stream, 1):
            if line.strip():
                write(sp.decode(parse_ids(line, "%s:%d" % (where, n), vocab)))


if __name__ == "__main__":
    main()
