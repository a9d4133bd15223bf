#!/usr/bin/python3
"""detokenize.py - turn token ids back into text with a SentencePiece model
(the DIR/tokenizer.model that tokenize_corpus.py wrote).

Needs Debian's SentencePiece (and NumPy for binary files):

    apt-get install -y python3-sentencepiece python3-numpy

usage: detokenize.py --tokenizer DIR/tokenizer.model [FILE ...]
       mpirun -n 2 ringattn generate ... --output-format ids | detokenize.py --tokenizer M

Reads ids as text - what `ringattn generate` prints for a vocabulary above
256 (--output-format ids): integers (ASCII digits) separated by spaces or
commas - from each FILE or standard input (FILE "-"), and prints each line
decoded (a newline is added where the text does not end in one). A FILE
ending in .npy is read as a 1-D array of integer ids (no pickled objects);
--dtype uint16|uint32 reads FILEs as flat little-endian ids (train.bin,
val.bin). Both binary forms need regular files (not standard input, a pipe
or a device), and a --dtype file must hold a whole number of ids. --encode
does the reverse: UTF-8 text in, one line of ids out (a prompt for generate
--prompt-tokens).

Any FILE (or standard input) that cannot be read (missing, a directory, not
UTF-8, not a readable .npy) stops the run with `detokenize.py: FILE: reason`;
lines printed for earlier FILEs stay printed. Errors about an id count its
items from 1.
"""
import argparse
import io
import os
import re
import stat
import sys

try:
    import sentencepiece as spm
except ImportError as e:  # pragma: no cover - a message, not a traceback
    sys.exit("detokenize.py: %s; install Debian's package: apt-get install -y python3-sentencepiece, and run "
             "with /usr/bin/python3" % e)

# int() also takes '+1', '1_000' and non-ASCII digits: none of them is an id generate prints
ID = re.compile(r"-?[0-9]+")


def fail(msg):
    sys.exit("detokenize.py: " + msg)


def parse_ids(line, where, vocab):
    ids = []
    for k, word in enumerate(line.replace(",", " ").split(), 1):  # item 1 is the first, as people count
        if not ID.fullmatch(word):
            fail("%s: '%s' (item %d) is not a token id" % (where, word[:24], k))
        v = int(word)
        if not 0 <= v < vocab:
            fail("%s: token %d (item %d) is outside the tokenizer's vocabulary [0, %d)" % (where, v, k, vocab))
        ids.append(v)
    return ids


def file_size(path):
    """The size of path, or None when it is not a regular file (a directory, pipe or device: no whole read)."""
    st = os.stat(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def binary_ids(path, dtype):
    import numpy as np
    size = file_size(path)
    if size is None:
        fail("%s: not a regular file" % path)
    if path.endswith(".npy"):
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":  # numpy would call it pickled data
                fail("%s: not a .npy file (no \\x93NUMPY magic)" % path)
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            fail("%s: not a 1-D array of integers (shape %s, dtype %s)" % (path, arr.shape, arr.dtype))
        return arr.tolist()
    width = np.dtype(dtype).itemsize
    if size % width:  # a torn or foreign file: never drop its tail silently
        fail("%s: %d bytes is not a whole number of %s ids (%d bytes each)" % (path, size, dtype, width))
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).tolist()


def reason(e):
    """One line for what went wrong reading a file."""
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text (byte 0x%02x: %s)" % (e.object[e.start], e.reason)
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


def write(text):
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def run(src, where, a, sp, vocab):
    if a.encode:
        if src == "-":  # bytes: the locale's decoding would pass bad bytes on to SentencePiece as surrogates
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            with open(src, encoding="utf-8") as f:
                text = f.read()
        print(" ".join(str(i) for i in sp.encode(text)))
        return
    if src != "-" and (a.dtype or src.endswith(".npy")):
        ids = binary_ids(src, a.dtype or "uint16")
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            fail("%s: token %d is outside the tokenizer's vocabulary [0, %d)" % (where, bad[0], vocab))
        write(sp.decode(ids))
        return
    # standard input as UTF-8 whatever the locale, like the files (a bad byte is an error, not a surrogate)
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8") if src == "-" else open(src, encoding="utf-8")
    try:
        for n, line in enumerate(stream, 1):
            if line.strip():
                write(sp.decode(parse_ids(line, "%s:%d" % (where, n), vocab)))
    finally:
        if src == "-":
            stream.detach()  # leave sys.stdin's buffer open
        else:
            stream.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="the SentencePiece model (DIR/tokenizer.model)")
    ap.add_argument("--dtype", choices=["uint16", "uint32"], help="read FILEs as flat binary ids")
    ap.add_argument("--encode", action="store_true", help="text to ids instead (one line of ids per input)")
    ap.add_argument("files", nargs="*", help="files of ids (default: standard input)")
    a = ap.parse_args()
    sources = a.files or ["-"]
    if a.dtype and a.encode:
        fail("--dtype reads binary ids to decode; --encode reads text")
    if a.dtype and "-" in sources:
        fail("--dtype %s reads binary FILEs by name; standard input is read as text ids (name the file instead)"
             % a.dtype)
    # SentencePiece aborts the process (no exception) on a directory, and a FIFO would block
    try:
        if file_size(a.tokenizer) is None:
            fail("--tokenizer %s: not a regular file (DIR/tokenizer.model of tokenize_corpus.py)" % a.tokenizer)
        open(a.tokenizer, "rb").close()
        sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    except OSError as e:
        fail("--tokenizer %s: %s" % (a.tokenizer, reason(e)))
    except RuntimeError as e:
        fail("--tokenizer %s: not a SentencePiece model (%s)" % (a.tokenizer, str(e).strip()))
    vocab = sp.vocab_size()
    for src in sources:
        where = "standard input" if src == "-" else src
        try:
            run(src, where, a, sp, vocab)
        except (OSError, ValueError, EOFError) as e:  # UnicodeDecodeError is a ValueError
            fail("%s: %s" % (where, reason(e)))


if __name__ == "__main__":
    main()
