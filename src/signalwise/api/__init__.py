"""The HTTP API: `create_app(settings)` builds it; `signalwise serve` runs it.

`create_app` loads on first use: `signalwise live` registers its command from this package, and the
whole command tree (`signalwise --help`) must not pay for FastAPI and SQLAlchemy to list it.
"""

from .._lazy import lazy_names

__all__ = ["create_app"]
__getattr__, __dir__ = lazy_names(__name__, {"create_app": ".app"})
