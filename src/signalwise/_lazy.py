"""Names a package loads on first use (PEP 562), so that importing one of its modules does not import them all.

`signalwise atspm` imports `analytics.atspm` and must not pay for the audit; `signalwise run` imports
`store` names without the API's; the vision package's names pull OpenCV.
"""

from __future__ import annotations

import importlib
import sys


def lazy_names(package: str, homes: dict[str, str]):
    """(`__getattr__`, `__dir__`) for `package`: each name in `homes` is imported from its module
    (relative to the package) the first time it is asked for, then kept in the package."""

    def __getattr__(name: str):  # noqa: ANN202
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
