"""Files are never lost: every writer of the house goes through here (audio, models, checkpoints, presets, reports).

Rules:
- An output is written to a temporary file in its target folder and renamed into place only when complete, so a
  failure at any point (full disk, read-only folder, Ctrl-C, an error mid-file) leaves the previous file as it was
  and no half-written file behind.
- The target folder's writability is checked before the work starts (:func:`check_writable`), so the error comes
  first, not after a long run.
- An output that is the input (same path, a symlink to it, or a hard link: same device and inode) is refused.

This module also holds the ONE list of audio formats the house reads and writes (:data:`AUDIO_FORMATS`).
Light on purpose: it imports nothing heavy at module level (the CLI's start-up time depends on it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from realtime.errors import AudioFileError, OutputFileError

# Extension -> libsndfile container. mp3 only where the installed libsndfile writes it (>= 1.1).
AUDIO_FORMATS: dict[str, str] = {
    ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF", ".mp3": "MP3",
}
AUDIO_EXTENSIONS: tuple[str, ...] = tuple(AUDIO_FORMATS)
"""Every audio extension process, train, quality and the docs accept (lower case, with the dot)."""


def supported_text() -> str:
    """``"wav, flac, ogg, aiff, mp3"``: the list for messages and ``--help``."""
    return ", ".join(dict.fromkeys(fmt.lower() for fmt in AUDIO_FORMATS.values()))


def audio_container(path: str | Path) -> str:
    """The libsndfile container for ``path``'s extension; :class:`AudioFileError` for an unsupported one."""
    ext = Path(path).suffix.lower()
    fmt = AUDIO_FORMATS.get(ext)
    if fmt is None:
        raise AudioFileError(f"{path}: unsupported extension {ext or '(none)'!r}; use one of {supported_text()}")
    import soundfile as sf

    if fmt not in sf.available_formats():
        raise AudioFileError(f"{path}: this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}; "
                             f"use one of wav, flac, ogg, aiff")
    return fmt


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file: same path, a symlink, or a hard link (device + inode)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_overwrite_input(inp: str | Path, out: str | Path) -> None:
    """Raise :class:`OutputFileError` when the output would overwrite the input (the input stays untouched)."""
    if same_file(inp, out):
        raise OutputFileError(f"output {out} is the input file {inp} (same file on disk); "
                              "choose another output name, the input is never overwritten")


def check_writable(path: str | Path, create_parent: bool = True) -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists (or is created) and is writable,
    and ``path`` is not a folder. Returns ``path`` as a :class:`Path`; raises :class:`OutputFileError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputFileError(f"output {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        if not create_parent:
            raise OutputFileError(f"output folder {parent} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputFileError(f"cannot create output folder {parent}: {exc.strerror or exc}") from None
    if not parent.is_dir():
        raise OutputFileError(f"output folder {parent} is not a folder")
    # os.access says nothing reliable for root on a read-only mount: try a real temporary file.
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise OutputFileError(f"cannot write to folder {parent}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success it is renamed onto ``target``.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and ``target`` keeps its
    previous content. The temporary name ends in ``target``'s own suffix, so writers that pick a format from the
    extension still do. ``OSError`` from the writer or the rename becomes :class:`OutputFileError`.
    """
    target = check_writable(target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".part" + target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600; the result gets what a plain open would give
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputFileError(f"cannot write {target}: {exc.strerror or exc}; the previous file (if any) is "
                                  "unchanged") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _mode_for(target: Path) -> int:
    """The existing file's permissions, or 0666 less the umask for a new file."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return target


def write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    return write_bytes(target, text.encode("utf-8"))
