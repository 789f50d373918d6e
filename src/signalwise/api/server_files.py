"""Files a request names on the server, only inside a directory the server's owner configured.

A camera stream's video, camera file and detector model (`cameras_dir`), a live controller switch's model
directory (`models_dir`). The server runs with its owner's rights (root, in some deployments): a request that
could name any path would have it read whatever is there, and its different reasons for a path that is missing,
a directory or no video would tell the caller which paths exist. So a name is judged by its text alone, before
anything is opened or even looked at, and every name outside gets the same answer. Symbolic links inside the
directory are followed: they are its owner's. The command line is not limited: its user names their own files.
"""

from __future__ import annotations

import os
from pathlib import Path


def inside(name: str, directory: Path | None) -> Path | None:
    """`name` (relative to `directory`, or absolute) as an absolute path inside `directory`, or None when it is
    not one: no directory configured, an empty name, a NUL byte, a `..` anywhere, or a path elsewhere. Only the
    text is read (and the working directory, for a relative `directory`), never the file system at `name`."""
    if directory is None or not name or "\x00" in name:
        return None
    given = Path(name)
    if ".." in given.parts:  # "a/../b" is not always "b" when "a" is a link: no name with one is taken
        return None
    root = Path(os.path.abspath(directory))
    path = Path(os.path.normpath(given if given.is_absolute() else root / given))
    return path if root in path.parents else None


def outside(field: str, what: str, directory: Path | None, variable: str, instead: str) -> str:
    """The one answer for every name `inside` refuses: it says nothing of the path, nor whether it exists."""
    if directory is None:
        return f"{field}: this server takes no {what} named over the API ({variable} is unset); {instead}"
    return (f"{field}: a request names a {what} only inside the directory {variable} gives, relative to it or as a "
            f"path inside it; {instead}")
