"""plot_out.py - the input and output files of every plot script: checked
before any work, the output written so that nothing of the user's is lost.

    out = plot_out.check(prog, a.output, inputs)   # before reading inputs
    plot_out.check_input(prog, path)               # before opening each input
    ...
    plot_out.save(prog, fig, out, dpi=100)

check_input() refuses (one line, exit 1) an input that is missing or not a
regular file: open() on a FIFO blocks until a writer comes, maybe never, so
the type is read with os.stat, which does not block, before any open; a
directory or a device is named as such. input_problem() is the same test
returning the reason, for scripts with their own error format.

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
import stat
import sys
import tempfile

FORMATS = ("png", "pdf", "svg")


def input_problem(path):
    """Why path cannot be read as an input file ("No such file or directory",
    "is a FIFO ..."), or None for a regular file."""
    try:
        st = os.stat(path)  # never blocks, unlike open() on a FIFO
    except OSError as e:
        return e.strerror or str(e)
    except ValueError as e:  # a NUL in the name
        return str(e)
    m = st.st_mode
    if stat.S_ISREG(m):
        return None
    if stat.S_ISDIR(m):
        return "Is a directory"
    if stat.S_ISFIFO(m):
        return "is a FIFO (named pipe), not a regular file: reading it would wait for a writer"
    if stat.S_ISCHR(m) or stat.S_ISBLK(m):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(m):
        return "is a socket, not a regular file"
    return "is not a regular file"


def check_input(prog, path):
    """path, once it is a regular file (else exit 1 naming it)."""
    why = input_problem(path)
    if why:
        sys.exit(f"{prog}: {path}: {why}")
    return path


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
