"""SUMO's own table of its options: every name and synonym, with its canonical name and value type.

Read once per process from `sumo --save-template` (about 0.1 s), so that a check of a configuration's
`sumo_options` knows what the installed SUMO knows: that `n` is `net-file` and `netstate-output` is
`netstate-dump`, which names SUMO does not have, and which options take a file. A list kept here would fall
behind SUMO's releases, and a check by name alone misses every synonym.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .sumo_home import sumo_binary

#: SUMO's value types of options that name files (`FILE[]`: a list of them)
FILE_TYPES = ("FILE", "FILE[]")


@dataclass(frozen=True)
class SumoOption:
    name: str  # the canonical name, without dashes
    value_type: str  # SUMO's: BOOL, INT, FLOAT, TIME, STR, STR[], FILE, FILE[], ...

    @property
    def names_a_file(self) -> bool:
        return self.value_type in FILE_TYPES


@functools.lru_cache(maxsize=1)
def option_table() -> dict[str, SumoOption] | None:
    """Every option name and synonym of the installed SUMO -> its option; None when SUMO cannot say (the
    caller then checks by name alone)."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            template = Path(tmp) / "template.xml"
            subprocess.run([sumo_binary(), "--save-template", str(template)], check=True, capture_output=True,
                           timeout=30)
            root = ET.parse(template).getroot()
    except (OSError, RuntimeError, subprocess.SubprocessError, ET.ParseError):
        return None
    table: dict[str, SumoOption] = {}
    for group in root:
        for element in group:
            option = SumoOption(element.tag, element.get("type", "STR"))
            for name in (element.tag, *element.get("synonymes", "").split()):
                table[name] = option
    return table or None
