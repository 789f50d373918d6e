"""Secrets written `***` in what people and logs read: one rule for every place that shows a URL or a command.

A URL's password (its user information read as both `urllib.parse.urlsplit` and SQLAlchemy's `make_url` read it:
`postgresql://u:p/w@h/d` has the password `p/w` for SQLAlchemy, and none for urlsplit, so the wider reading wins),
the value of a query option or `name=value` pair named for a secret (`password=`, `pass=`, `sslpassword=`,
`token=`, `api_key=`, ...), an `Authorization` header's credentials (`Bearer <token>`, `Basic <text>`), a bare JWT
(`eyJ....eyJ....sig`), and a signalwise API key's secret (`sw_<id>_<secret>`: its public id stays, as the logs
name keys by it). When unsure, less is shown: an `@` in a URL's path after a `:` masks what lies between.

Standard library only: `core` imports nothing else, and every package may import it (the store, vision, the
provenance of a run).
"""

from __future__ import annotations

import re

MASK = "***"

#: `scheme://` then the user information up to the last `@` before the query (`?`), fragment (`#`) or a space:
#: SQLAlchemy's password runs to an `@` through any `/`, urlsplit's user information ends at the first `/`
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][\w+.-]*://)(?P<user>[^:/@\s?#]*):(?P<password>[^\s?#]*)@")
#: a query option or `name=value` pair whose value is a secret
_SECRET_PAIR = re.compile(
    r"(?P<name>\b[\w.-]*(?:token|secret|passw(?:or)?d|pass|pwd|api_?key|access_?key|private_?key|credentials?"
    r"|auth)=)(?P<value>[^&#\s;,]+)", re.IGNORECASE)
#: an HTTP Authorization header's credentials (`Authorization: Bearer x`, `Authorization: Basic x`)
_AUTH_HEADER = re.compile(r"(?P<name>\bAuthorization\s*[:=]\s*)(?:(?P<scheme>\w+)(?P<space>\s+))?(?P<value>[^\s,;\"']+)",
                          re.IGNORECASE)
#: a bearer token alone (`Bearer x`, x of 12 characters or more: prose's "bearer tokens" stays)
_BEARER = re.compile(r"(?P<name>\bBearer\s+)[A-Za-z0-9._~+/=-]{12,}", re.IGNORECASE)
#: a JWT: three base64url parts, the first two JSON objects (`eyJ` is `{"`)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
#: a signalwise API key (`store.keys`: `sw_<id>_<secret>`): its public id is kept
_API_KEY = re.compile(r"\b(sw_[0-9a-f]{10}_)[A-Za-z0-9_-]+")


def redacted(text: str) -> str:
    """`text` with every secret the module doc names written `***`."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['name']}{m['scheme'] or ''}{m['space'] or ''}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['name']}{MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _SECRET_PAIR.sub(lambda m: f"{m['name']}{MASK}", text)
    return _API_KEY.sub(rf"\1{MASK}", text)


def shown_url(url: object) -> str:
    """A URL to show (a database's, a camera's, Redis's): a string, or an object that renders itself as SQLAlchemy's
    `URL` does (`render_as_string`), with its secrets written `***` (`redacted`)."""
    render = getattr(url, "render_as_string", None)
    text = render(hide_password=True) if callable(render) else str(url)
    return redacted(text)
