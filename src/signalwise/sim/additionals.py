"""A user's additional files as a run loads them: the outputs they ask for written inside the run.

SUMO writes a detector's `file`, a calibrator's `output` and a timed event's `dest` relative to the additional
file that names them. Loaded as they are, a user's files write into the user's folder, over what is there (the
observed counts a network was calibrated against), and the parallel runs of a comparison write the same file.
A run loads instead a copy of each such file whose outputs point into a directory of the run, and whose
relative inputs (an `<include href>`, a rerouter's or a variable speed sign's `file`) are made absolute, so they
still resolve. A file that asks for no output outside the run is loaded as it is.

Which attribute is an output is SUMO's own reading (its additional_file.xsd and NLTriggerBuilder /
NLDiscreteEventBuilder): a calibrator's `file` is an input, its `output` the output.
"""

from __future__ import annotations

import gzip
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: the directory, beside a run's own SUMO outputs, its additional files' outputs are written into
ADDITIONAL_DIR = "additional"
#: where in it the copies SUMO loads are written
LOADED_DIR = "loaded"

_OUTPUT_FILE_TAGS = ("e1Detector", "inductionLoop", "instantInductionLoop", "e2Detector", "laneAreaDetector",
                     "e3Detector", "entryExitDetector", "edgeData", "laneData", "routeProbe", "vTypeProbe")
#: element -> the attribute naming a file SUMO writes
OUTPUT_ATTRIBUTE = {**dict.fromkeys(_OUTPUT_FILE_TAGS, "file"), "calibrator": "output", "timedEvent": "dest"}
#: element -> the attribute naming a file SUMO reads, relative to the file naming it
INPUT_ATTRIBUTE = {"include": "href", "rerouter": "file", "variableSpeedSign": "file", "calibrator": "file"}
#: output names that are not a file: no output, the terminal, a socket (host:port)
_NOT_A_FILE = frozenset({"", "nul", "/dev/null", "stdout", "stderr", "-"})
_SOCKET = re.compile(r"[^/\\:]+:\d+")


@dataclass(frozen=True)
class UserOutput:
    """One output file an additional file asks SUMO for."""

    source: Path  # the additional file that names it
    what: str  # the element asking: "inductionLoop d1"
    path: Path  # where SUMO writes it as the file stands (a relative name is relative to `source`)


@dataclass
class LoadedAdditionals:
    """The additional files to give SUMO, and where each redirected output goes."""

    files: tuple[Path, ...]
    #: an output as the user's file names it (absolute) -> the file the run writes instead
    redirected: dict[Path, Path] = field(default_factory=dict)
    #: each copy loaded -> the user's file it stands for (SUMO's messages name the copy)
    originals: dict[Path, Path] = field(default_factory=dict)


def outputs_named(files: Iterable[Path]) -> list[UserOutput]:
    """Every output file the additional files (and the files they include) ask SUMO for, in file order."""
    found: list[UserOutput] = []
    for path in files:
        root = _parsed(Path(path))
        if root is not None:
            _collect(Path(path), root, found, set())
    return found


def redirected_names(outputs: Iterable[UserOutput]) -> dict[Path, str]:
    """A name in the run's output directory for each distinct output: its own file name, numbered (`2-x.xml`)
    where two outputs in different folders share one. Several elements writing one file still share it."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for out in outputs:
        if out.path in names:
            continue
        name, n = out.path.name, 1
        while name in taken:
            n += 1
            name = f"{n}-{out.path.name}"
        names[out.path] = name
        taken.add(name)
    return names


def with_outputs_in(files: Iterable[Path], out_dir: Path, keep_under: Path | None = None) -> LoadedAdditionals:
    """The additional files to load so that every output they ask for is written into `out_dir`.

    An output already under `keep_under` (the run's own directory: the detectors and mean data a run writes
    itself) stays where it is. A file with an output elsewhere, or including one, is copied into
    `out_dir/loaded/` with its outputs pointed into `out_dir` and its relative paths made absolute; the others
    are given as they are.
    """
    files = tuple(Path(f) for f in files)
    outputs = [o for o in outputs_named(files) if not _inside(o.path, keep_under)]
    if not outputs:
        return LoadedAdditionals(files)
    # absolute: SUMO reads a relative path in the copy against the copy's own folder (`out_dir/loaded/`), so a
    # relative run directory (the default `runs`) would be named twice over
    out_dir = Path(os.path.abspath(out_dir))
    redirected = {path: out_dir / name for path, name in redirected_names(outputs).items()}
    copies: dict[Path, Path] = {}
    loaded = tuple(_rewritten(f, redirected, out_dir / LOADED_DIR, copies, set()) for f in files)
    return LoadedAdditionals(loaded, redirected, {copy: source for source, copy in copies.items()})


def _collect(source: Path, root: ET.Element, found: list[UserOutput], seen: set[Path]) -> None:
    seen.add(source.resolve())
    for el, attr, kind in _path_attributes(root):
        value = el.get(attr, "")
        if kind == "output":
            if _is_file(value):
                found.append(UserOutput(source, _what(el), _as_sumo_reads(value, source)))
        elif kind == "include":
            child = _as_sumo_reads(value, source)
            child_root = None if child.resolve() in seen else _parsed(child)
            if child_root is not None:
                _collect(child, child_root, found, seen)


def _rewritten(source: Path, redirected: dict[Path, Path], copy_dir: Path, copies: dict[Path, Path],
               seen: set[Path]) -> Path:
    """`source`, or the copy of it that writes its outputs where `redirected` says."""
    key = source.resolve()
    if key in copies:
        return copies[key]
    root = None if key in seen else _parsed(source)
    if root is None:
        return source
    seen.add(key)
    changed = False
    for el, attr, kind in _path_attributes(root):
        value = el.get(attr, "")
        if kind == "output" and not _is_file(value):
            continue
        target = _as_sumo_reads(value, source)
        if kind == "output" and target in redirected:
            target, changed = redirected[target], True
        elif kind == "include":
            child = _rewritten(target, redirected, copy_dir, copies, seen)
            changed = changed or child != target
            target = child
        el.set(attr, str(target))  # absolute (`_as_sumo_reads`, `out_dir`): the copy lies elsewhere
    if not changed:
        return source
    copy_dir.mkdir(parents=True, exist_ok=True)
    copy = copy_dir / _copy_name(source, copies)
    ET.ElementTree(root).write(copy, encoding="UTF-8", xml_declaration=True)
    copies[key] = copy
    return copy


def _path_attributes(root: ET.Element) -> Iterator[tuple[ET.Element, str, str]]:
    """Each (element, attribute, kind) that names a file: kind `output`, `include`, or `input`."""
    for el in root.iter():
        tag = _local(el.tag)
        out = OUTPUT_ATTRIBUTE.get(tag)
        if out is not None and el.get(out) is not None:
            yield el, out, "output"
        inp = INPUT_ATTRIBUTE.get(tag)
        if inp is not None and el.get(inp):
            yield el, inp, "include" if tag == "include" else "input"
        if tag == "tlLogic":  # an actuated program's own detectors write to its parameter `file`
            for param in el:
                if _local(param.tag) == "param" and param.get("key") == "file" and param.get("value") is not None:
                    yield param, "value", "output"


def _what(el: ET.Element) -> str:
    if _local(el.tag) == "param":
        return "tlLogic parameter file"
    ident = el.get("id") or el.get("type") or ""
    return f"{_local(el.tag)} {ident}".strip()


def _is_file(value: str) -> bool:
    value = value.strip()
    return value.lower() not in _NOT_A_FILE and not _SOCKET.fullmatch(value)


def _as_sumo_reads(value: str, source: Path) -> Path:
    """The path SUMO makes of `value` in `source` (FileHelpers::checkForRelativity), absolute."""
    path = Path(os.path.expanduser(value.strip()))
    return Path(os.path.abspath(path if path.is_absolute() else source.parent / path))


def _inside(path: Path, directory: Path | None) -> bool:
    return directory is not None and path.resolve().is_relative_to(Path(directory).resolve())


def _copy_name(source: Path, copies: dict[Path, Path]) -> str:
    """The copy's name: the file's own (uncompressed), numbered where two files share it."""
    base = source.name.removesuffix(".gz")
    taken = {c.name for c in copies.values()}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{n}-{base}"
    return name


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _parsed(path: Path) -> ET.Element | None:
    """The file's root element; None when it cannot be read as XML (SUMO then says what is wrong with it)."""
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as fh:
            return ET.parse(fh).getroot()
    except (OSError, ET.ParseError, EOFError):
        return None
