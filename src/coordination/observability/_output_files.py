"""Writing a command's files whole or not at all (``coordination dashboard``/``alerts``).

A rule file is read by a running Prometheus on every reload and a dashboard by Grafana's
provisioning: each file is written beside its target and renamed over it (a reader sees
the old file or the new one, never a truncated one), and a command's files are renamed
only once all of them are written (``alerts -o rules.yml --prometheus-config bad/p.yml``
leaves no rule file without its configuration). A target that is not a regular file
(``/dev/stdout``, a pipe) is written in place: renaming over it would replace it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence

from .._errors import ConfigError
from .._quote import quote

__all__ = ["write_files"]


def write_files(outputs: Sequence[tuple[str, str, str]]) -> None:
    """Write each ``(path, text, option)``; a ``ConfigError`` naming the option of the
    first that cannot be written, and then none of them is changed."""
    seen: dict[str, str] = {}
    for path, _, option in outputs:
        real = os.path.realpath(path)
        if real in seen:
            raise ConfigError(
                f"--{option}: {quote(path)} is also --{seen[real]}'s file",
                field=option.replace("-", "_"),
                value=path,
            )
        seen[real] = option
    staged: list[tuple[str, str]] = []  # (temporary, target)
    try:
        for path, text, option in outputs:
            try:
                temporary = _stage(path, text)
            except OSError as exc:
                raise _cannot(path, option, exc) from None
            if temporary is not None:
                staged.append((temporary, path))
        for temporary, path in staged:
            os.replace(temporary, path)
        staged.clear()
    finally:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _stage(path: str, text: str) -> str | None:
    """``text`` written to a new file beside ``path`` (with ``path``'s permissions when
    it exists), or straight into ``path`` when that is not a regular file; the new
    file's name, or None when written in place."""
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        return None
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
    # "x": a new file, made as open() makes any (the umask applies), never followed
    # through a link someone left at that name
    with open(temporary, "x", encoding="utf-8") as out:
        try:
            out.write(text)
        except BaseException:
            out.close()
            os.unlink(temporary)
            raise
    if mode is not None:
        os.chmod(temporary, stat.S_IMODE(mode))
    return temporary


def _cannot(path: str, option: str, exc: OSError) -> ConfigError:
    return ConfigError(
        f"--{option}: cannot write {quote(path)} ({exc.strerror or exc})",
        field=option.replace("-", "_"),
        value=path,
    )
