"""plot_out.py - the output file of every plot script: checked before any
work, written so that nothing of the user's is lost.

    out = plot_out.check(prog, a.output, inputs)   # before reading inputs
    ...
    plot_out.save(prog, fig, out, dpi=100)

check() refuses (one line, exit 1) an output that is one of the inputs (by
name, symlink or hard link), that exists and is not a regular file (a
directory, a FIFO that savefig would block on), whose directory is
missing, or whose name does not end in a format it writes (matplotlib
would add ".png" to "noext" and write "./.png" for "."). save() writes a
temporary file beside it and renames it: a failed write leaves the old
file, and a symlink at the output is replaced, never written through. The
image gets the permission bits of the file it replaces (a new one: 0666
less the umask, as savefig's own open would give).
"""
import os
import signal
import sys
import tempfile

FORMATS = ("png", "pdf", "svg")


def check(prog, out, inputs):
    """out, once it is safe to write (else exit 1 naming it)."""
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    if ext not in FORMATS:
        sys.exit(f"{prog}: -o {out}: give a file name ending in " + ", ".join("." + f for f in FORMATS))
    if os.path.lexists(out):
        for path in inputs:
            if os.path.exists(path) and os.path.exists(out) and os.path.samefile(out, path):
                sys.exit(f"{prog}: -o {out} is the input {path}: writing it would destroy it")
        if not os.path.islink(out) and not os.path.isfile(out):
            sys.exit(f"{prog}: -o {out}: exists and is not a regular file")
    where = os.path.dirname(out) or "."
    if not os.path.isdir(where):
        sys.exit(f"{prog}: -o {out}: no directory {where}")
    return out


def mode_for(out):
    """The replaced file's permission bits, else what a new file gets (0666
    less the umask): mkstemp's 0600 would hide a shared plot."""
    if os.path.isfile(out) and not os.path.islink(out):
        return os.stat(out).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save(prog, fig, out, dpi):
    """fig into out through a temporary file in out's directory; SIGTERM or
    Ctrl-C while it is written removes the temporary too."""
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    where = os.path.dirname(out) or "."
    tmp = None
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp", dir=where)
        os.fchmod(fd, mode_for(out))
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=ext, dpi=dpi)
        os.replace(tmp, out)
        tmp = None
    except (OSError, ValueError) as e:  # ValueError: an image too large to render
        sys.exit(f"{prog}: {out}: cannot write: {getattr(e, 'strerror', None) or e}")
    finally:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)
        signal.signal(signal.SIGTERM, old_term)
