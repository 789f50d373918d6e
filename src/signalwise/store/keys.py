"""API keys: created with scopes (and an expiry), stored hashed, verified in constant time, revoked.

A key reads `sw_<id>_<secret>`: the id finds the row, the whole key's
SHA-256 is compared with `hmac.compare_digest`. The secret has 256 bits of
entropy, so a plain SHA-256 is enough (no slow password hash: a key is not a
password a person chose). The key is shown once, at creation.

Rotating a key: create the new one (same scopes), move the clients to it,
revoke the old one (`signalwise keys create`, then `signalwise keys revoke`).

Each key records who created and who revoked it (`created_by`, `revoked_by`: a key's name and id, or
`cli:<user>`). A key creates only keys that hold no scope it lacks itself and expire no later than it does,
and revokes only such keys (and itself); the command line has neither bound.
Names that change logs and readers give a meaning to (`RESERVED_NAMES`) are refused, and so is any name that
could be read as one (invisible characters, look-alike letters): a change made by a key called `restart` could
not be told from a replayed one. New names keep to `NAME_CHARACTERS`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import string
import threading
import time
import unicodedata

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..core.redaction import shown_url
from .tables import ApiKey

log = logging.getLogger("signalwise.store.keys")

#: what each scope allows; `admin` also holds every other scope but those in `NOT_IMPLIED_BY_ADMIN`
SCOPES = {
    "read": "analytics, snapshots, streams, predictions",
    "ingest": "records, event logs, detector feeds",
    "operate": "runtime changes, overrides, controller switch, deploy, rollback, training",
    "admin": "keys, cache, server configuration (and everything above; not evidence)",
    "evidence": "violation evidence images (each access is logged)",
    "preempt": "preemption calls into a live run, nothing else (a dispatch system's key; operate holds it too)",
}
#: scopes a key holds when it holds another: an operator may place the preemption calls a dispatch key places
IMPLIED_BY = {"preempt": frozenset({"operate"})}
#: scopes `admin` does not hold unless granted them: evidence images are personal data (number plates, faces),
#: and whoever manages keys and the cache has no need to read them (the routes ask `holds` too)
NOT_IMPLIED_BY_ADMIN = frozenset({"evidence"})
PREFIX = "sw_"
#: names the change log, the model registry and the readers give a meaning to, with that meaning: a key so named
#: would write records nobody could tell from theirs (compared case-insensitively)
RESERVED_NAMES = {
    "restart": "a lasting change replayed when a live run starts again",
    "runtime": "a change the live run makes itself (an override that ends)",
    "local": "a keyless reader on a loopback server, and a change made without a key",
    "insecure": "a change made without a key under --insecure-no-auth",
    "unknown": "a stored change whose author was not recorded",
    "cli": "the command line",
}
#: prefixes of the names the command line and the model registry record: `cli:<user>`, `import:<directory>`
RESERVED_PREFIXES = ("cli:", "import:")
#: what a new key's name is made of: a name is read in change logs, listings and log lines, where a look-alike
#: letter (Cyrillic `е` for `e`) or an invisible one would pass for another name
NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + " -_.@:")
#: `last_used_at` is a minute-precise figure
TOUCH_EVERY = dt.timedelta(minutes=1)


class ApiKeyError(ValueError):
    """A key that cannot be created, found or used: the reason, in one line."""


class KeyNameInUse(ApiKeyError):
    """A new key would share its name with an active one."""


class ScopeNotHeld(ApiKeyError):
    """The creating key would grant a scope it does not hold itself."""


class ExpiryRefused(ApiKeyError):
    """The new key's expiry cannot be taken: without a time zone, or later than the creating key's own."""


class RevocationRefused(ApiKeyError):
    """The revoking key may not revoke this one: it holds a scope the revoking key lacks, or outlives it."""


def holds(scopes: frozenset[str] | tuple[str, ...], scope: str) -> bool:
    """Whether a key with these scopes holds `scope`: granted it, or `admin` (all but `NOT_IMPLIED_BY_ADMIN`), or a
    scope that implies it (`IMPLIED_BY`)."""
    return (scope in scopes or ("admin" in scopes and scope not in NOT_IMPLIED_BY_ADMIN)
            or any(s in scopes for s in IMPLIED_BY.get(scope, ())))


def grant_refusal(creator: str, missing: list[str] | tuple[str, ...]) -> str:
    """Why `creator` may not create a key with the `missing` scopes, in one line."""
    return (f"key {creator!r} cannot grant {', '.join(missing)}: a key creates only keys whose scopes it holds "
            f"itself, and admin does not hold {', '.join(sorted(NOT_IMPLIED_BY_ADMIN))}; such a key is created by a "
            "key that holds it (with admin) or by the command line (signalwise keys create)")


def _folded(name: str) -> str:
    """The name as a reader sees it: NFKC (full-width and ligature letters as plain ones), invisible and control
    characters dropped (a zero-width space shows as nothing), case folded."""
    normal = unicodedata.normalize("NFKC", name)
    return "".join(ch for ch in normal if ch.isprintable()).strip().casefold()


def _reads_as(folded: str, reserved: str) -> bool:
    """`folded` reads as `reserved`: the same, or the same but for letters outside ASCII in some places
    (`rеstart` with a Cyrillic `е`). The standard library has no table of look-alikes, so any such letter is
    taken for the one it stands in place of, as long as some of the reserved name's own characters are there;
    a name in another script altogether is not taken for one (new names are ASCII: `NAME_CHARACTERS`)."""
    if len(folded) != len(reserved):
        return False
    same = [a == b for a, b in zip(folded, reserved, strict=True)]
    return any(same) and all(s or (a.isalpha() and not a.isascii()) for s, a in zip(same, folded, strict=True))


def _reserved_match(name: str) -> tuple[str, str] | None:
    """(the reserved name or prefix this name reads as, what records mean by it), else None."""
    folded = _folded(name)
    for reserved, meaning in RESERVED_NAMES.items():
        if _reads_as(folded, reserved):
            return reserved, meaning
    for prefix in RESERVED_PREFIXES:
        if _reads_as(folded[:len(prefix)], prefix):
            return prefix, f"{prefix}… names what the command line and the model registry record"
    return None


def reserved_meaning(name: str) -> str | None:
    """What records mean by this name when it is reserved (`RESERVED_NAMES`, `RESERVED_PREFIXES`) or reads as
    one (`_folded`, `_reads_as`), else None."""
    match = _reserved_match(name)
    return None if match is None else match[1]


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    #: who created it: a key's name (`insecure` without one), or `cli:<user>`; None for keys stored before 0017
    created_by: str | None = None
    created_by_key_id: str | None = None
    revoked_by: str | None = None
    revoked_by_key_id: str | None = None

    @property
    def name_reserved(self) -> bool:
        """A name records give a meaning to, or one that reads as such (stored before such names were refused):
        it still works, and is flagged where keys are listed."""
        return reserved_meaning(self.name) is not None

    def state(self, now: dt.datetime | None = None) -> str:
        now = now or _now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _info(row) -> KeyInfo:  # noqa: ANN001 - an `api_keys` row (ORM object or Core row)
    return KeyInfo(row.id, row.name, tuple(row.scopes.split()), row.created_at, row.expires_at, row.revoked_at,
                   row.last_used_at, row.created_by, row.created_by_key_id, row.revoked_by, row.revoked_by_key_id)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}" if unknown
                        else f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(scopes))


def check_name(name: str) -> str:
    """The name, stripped; `ApiKeyError` for one that is empty, too long, has control or invisible characters,
    is reserved or reads as a reserved one, or has a character outside `NAME_CHARACTERS`."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ApiKeyError("a key needs a name of 1 to 128 characters")
    hidden = next((ch for ch in name if not ch.isprintable()), None)
    if hidden is not None:
        raise ApiKeyError(f"a key's name has no control characters nor invisible ones (U+{ord(hidden):04X} at "
                          f"{name.index(hidden)}): it is written into change logs and listings")
    match = _reserved_match(name)
    if match is not None:
        reserved, meaning = match
        plain = name.casefold() == reserved or (reserved.endswith(":") and name.casefold().startswith(reserved))
        said = (f"the name {name!r} is reserved" if plain else  # escaped: a look-alike would print as the original
                f"the name {ascii(name)} reads as the reserved {reserved!r}")
        raise ApiKeyError(f"{said}: change logs and readers use it for {meaning}, so what this key did could not "
                          "be told from that; choose another name")
    other = sorted({ch for ch in name if ch not in NAME_CHARACTERS})
    if other:
        raise ApiKeyError(f"a key's name is made of ASCII letters, digits, spaces and - _ . @ : (not "
                          f"{' '.join(repr(ch) for ch in other)}): in change logs and listings another letter "
                          "could pass for one of these")
    return name


def create_key(engine: Engine, name: str, scopes: list[str] | tuple[str, ...],
               expires_at: dt.datetime | None = None, created_by: str | None = None,
               creator_key_id: str | None = None) -> tuple[KeyInfo, str]:
    """A new key; returns its record and the key itself (shown once, never stored).

    `created_by`: who creates it (a key's name, `cli:<user>`); `creator_key_id`: that key's id, whose scopes the
    new key may not exceed and whose expiry it may not outlive (`_check_creator`)."""
    name = check_name(name)
    scopes = check_scopes(scopes)
    # one active key per name: revoking by name (`keys revoke NAME`) would otherwise revoke every key sharing it
    if any(k.name == name and k.state() == "active" for k in list_keys(engine)):
        raise KeyNameInUse(f"an active key is named {name!r}: revoke it first, or choose another name")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ExpiryRefused("the expiry needs a time zone")
    key_id = secrets.token_hex(5)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, name=name, scopes=" ".join(scopes), secret_sha256=_digest(key), created_at=_now(),
                 expires_at=expires_at, last_used_at=None, revoked_at=None,
                 created_by=None if created_by is None else created_by[:128], created_by_key_id=creator_key_id,
                 revoked_by=None, revoked_by_key_id=None)
    t = ApiKey.__table__
    with engine.begin() as conn:
        if creator_key_id is not None:  # in the transaction that inserts: a creator revoked meanwhile creates nothing
            _check_creator(conn.execute(select(t).where(t.c.id == creator_key_id)).first(), scopes, expires_at)
        conn.execute(t.insert().values(
            id=row.id, name=row.name, scopes=row.scopes, secret_sha256=row.secret_sha256,
            created_at=row.created_at, expires_at=row.expires_at, created_by=row.created_by,
            created_by_key_id=row.created_by_key_id))
    return _info(row), key


def _check_creator(creator, scopes: tuple[str, ...], expires_at: dt.datetime | None) -> None:  # noqa: ANN001
    """`ApiKeyError` unless the creating key (an `api_keys` row) is active, holds every scope the new key gets
    (`ScopeNotHeld`: an `admin` key would otherwise give itself `evidence`), and the new key expires no later
    than it does: a key lent for an hour must not leave behind one that lasts for ever."""
    if creator is None:
        raise ApiKeyError("the key creating this one is not in this database")
    info = _info(creator)
    if info.state() != "active":
        raise ApiKeyError(f"the key creating this one ({info.name!r}) is {info.state()}")
    missing = [s for s in scopes if not holds(info.scopes, s)]
    if missing:
        raise ScopeNotHeld(grant_refusal(info.name, missing))
    if info.expires_at is None or (expires_at is not None and expires_at <= info.expires_at):
        return
    asked = "a key that never expires" if expires_at is None else f"one that expires at {expires_at.isoformat()}"
    raise ExpiryRefused(f"key {info.name!r} expires at {info.expires_at.isoformat()}: the keys it creates must "
                      f"expire by then too, not {asked} (give an expires_at no later than its own)")


def verify_key(engine: Engine, key: str, touch: bool = True) -> KeyInfo:
    """The key's record if the key is valid and active; `ApiKeyError` saying why not (never which part was wrong)."""
    parts = key.strip().split("_", 2) if key else []
    if len(parts) != 3 or parts[0] + "_" != PREFIX:
        raise ApiKeyError("not a signalwise API key")
    t = ApiKey.__table__
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == parts[1])).first()
    # compare even when the id is unknown, so the time taken says nothing about which ids exist
    expected = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(key.strip())) or row is None:
        raise ApiKeyError("unknown or wrong API key")
    info = _info(row)
    state = info.state()
    if state != "active":
        raise ApiKeyError(f"API key {info.name!r} is {state}")
    now = _now()
    if touch and (info.last_used_at is None or now - info.last_used_at > TOUCH_EVERY):
        # at most one write a minute per key: a busy client must not turn every read into a write
        _touch(engine, info.id, now)
    return info


#: seconds a database that refused a `last_used_at` write (read-only) is not asked again; a check of whether it
#: is read-only (`engine.why_read_only`) costs PostgreSQL queries of its own, more than the one write it spares
TOUCH_RETRY_S = 300.0
#: database (its URL, password hidden) -> `time.monotonic()` of its last refused `last_used_at` write
_touch_refused: dict[str, float] = {}
#: the databases whose refusal was logged (once per database and process)
_touch_said: set[str] = set()
_touch_lock = threading.Lock()
#: (database, key id) -> `time.monotonic()` of the last attempt to record the key's use there: at most one a
#: minute, failed or not
_touch_tried: dict[tuple[str, str], float] = {}
#: how long the use's write waits for a SQLite writer holding the file (ms); the store's own wait is restored after
TOUCH_BUSY_MS = 1000


def _touch(engine: Engine, key_id: str, now: dt.datetime) -> None:
    """Record when a key was used: best effort, in a transaction of its own after the read that verified the key,
    so that a database that takes no writes (a read-only transaction or role, a standby, a read-only SQLite file)
    still verifies keys. A refused write is logged once per database and process, and not tried again on that
    database for `TOUCH_RETRY_S`; `last_used_at` is then older than the key's last use."""
    where = shown_url(engine.url)
    mono = time.monotonic()
    with _touch_lock:
        refused_at = _touch_refused.get(where)
        tried_at = _touch_tried.get((where, key_id))
        if (refused_at is not None and mono - refused_at < TOUCH_RETRY_S) or (
                tried_at is not None and mono - tried_at < TOUCH_EVERY.total_seconds()):
            return  # refused lately, or this key's write tried within the minute (a lock it met is not waited again)
        _touch_tried[(where, key_id)] = mono
    t = ApiKey.__table__
    try:
        with engine.begin() as conn:
            busy_ms = None
            if conn.dialect.name == "sqlite":  # a writer holding the file waits this request 1 s at most, not 30
                busy_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {TOUCH_BUSY_MS}")
            try:
                conn.execute(update(t).where(t.c.id == key_id).values(last_used_at=now))
            finally:
                if busy_ms is not None:  # the pooled connection keeps the store's own wait
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy_ms)}")
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        if not _refuses_writes(orig):  # a lock or a blip: this one use goes unrecorded, the next is tried
            log.debug("API key %s: last_used_at not recorded this time in %s: %s", key_id, where, reason)
            return
        with _touch_lock:
            _touch_refused[where] = time.monotonic()
            first = where not in _touch_said
            _touch_said.add(where)
        if first:
            log.warning("API keys' last use (last_used_at) is not recorded in %s: %s; keys are still verified, by "
                        "reading them (tried again every %.0f s; said once while it lasts)", where, reason,
                        TOUCH_RETRY_S)
        return
    if refused_at is not None:
        with _touch_lock:
            _touch_refused.pop(where, None)
            _touch_said.discard(where)  # writes work again: a later refusal is said again


#: PostgreSQL's SQLSTATEs of a database that takes no writes: a read-only transaction (a standby, or
#: `default_transaction_read_only`) and a role without the privilege
_READ_ONLY_SQLSTATES = ("25006", "42501")


def _refuses_writes(error: BaseException) -> bool:
    """Whether a failed write says the database takes no writes (for a while), not that it was busy."""
    if getattr(error, "sqlstate", None) in _READ_ONLY_SQLSTATES:
        return True
    return "readonly database" in str(error) or "read-only" in str(error)


def list_keys(engine: Engine) -> list[KeyInfo]:
    t = ApiKey.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.created_at)).all()
    return [_info(r) for r in rows]


def revoke_key(engine: Engine, id_or_name: str, revoked_by: str | None = None,
               revoker_key_id: str | None = None) -> list[KeyInfo]:
    """Revoke the key with this id, or every active key with this name; returns what was revoked.

    `revoked_by`, `revoker_key_id`: who revokes it (a key's name and id, or `cli:<user>`), stored with when. A
    revoking key (`revoker_key_id`) revokes only keys within its own scopes and expiry (`_check_revoker`:
    `RevocationRefused`, nothing revoked), itself always; the command line (no key) has no such bound."""
    t = ApiKey.__table__
    now = _now()
    targets = [k for k in list_keys(engine) if k.revoked_at is None and id_or_name in (k.id, k.name)]
    if not targets:
        raise ApiKeyError(f"no active key with id or name {id_or_name!r}")
    by = None if revoked_by is None else revoked_by[:128]
    with engine.begin() as conn:
        if revoker_key_id is not None:
            # read just before the revocation; on PostgreSQL the revoker's and the targets' rows stay locked until it
            # commits, taken in id order so that two keys revoking each other wait rather than deadlock, and a
            # revocation of the revoker at the same moment waits for this one (SQLite has no row lock: the two
            # could cross within the moment between this read and the write below)
            locked = conn.execute(select(t).where(t.c.id.in_([revoker_key_id, *(k.id for k in targets)]))
                                  .order_by(t.c.id).with_for_update()).all()
            _check_revoker(next((r for r in locked if r.id == revoker_key_id), None), targets, now)
        conn.execute(update(t).where(t.c.id.in_([k.id for k in targets]), t.c.revoked_at.is_(None))
                     .values(revoked_at=now, revoked_by=by, revoked_by_key_id=revoker_key_id))
    return [dataclasses.replace(k, revoked_at=now, revoked_by=by, revoked_by_key_id=revoker_key_id) for k in targets]


def _check_revoker(revoker, targets: list[KeyInfo], now: dt.datetime) -> None:  # noqa: ANN001 - an api_keys row
    """`RevocationRefused` unless the revoking key (an `api_keys` row) is active and may revoke every target: the
    bounds of creation (`_check_creator`) held to revocation, so a key lent for an hour cannot lock out the
    administrators whose keys outlive it, nor an `admin` key without `evidence` cut off the keys that read
    evidence. A key may always revoke itself."""
    if revoker is None:
        raise RevocationRefused("the key revoking is not in this database")
    info = _info(revoker)
    if info.state(now) != "active":
        raise RevocationRefused(f"the key revoking ({info.name!r}) is {info.state(now)}")
    for target in targets:
        if target.id == info.id:
            continue
        missing = [s for s in target.scopes if not holds(info.scopes, s)]
        if missing:
            why = (f"it holds {', '.join(missing)}, which {info.name!r} does not (admin does not hold "
                   f"{', '.join(sorted(NOT_IMPLIED_BY_ADMIN))})")
        elif info.expires_at is not None and (target.expires_at is None or target.expires_at > info.expires_at):
            lasts = "never expires" if target.expires_at is None else f"expires at {target.expires_at.isoformat()}"
            why = f"it {lasts}, so it outlives {info.name!r}, which expires at {info.expires_at.isoformat()}"
        else:
            continue
        raise RevocationRefused(
            f"key {info.name!r} cannot revoke key {target.name!r} (sw_{target.id}): {why}; a key revokes only keys "
            "whose scopes it holds and that expire no later than it does (and itself), as it creates only such "
            f"keys; revoke it with a key that may, or with the command line on the server's database (signalwise "
            f"keys revoke {target.id})")


class KeyMemory:
    """The keys this process verified against the database, each with when (epoch s).

    While the database cannot be reached, a key verified within a grace period is taken from here with its
    scopes as last read, so operators keep control of a live run through a database outage. A key the database
    refuses (revoked, expired, unknown) is forgotten at once, so a revocation holds from the database's first
    answer. A key this process never verified is not here: it cannot be checked until the database answers.
    Keyed by the key's digest (the key itself is never kept) and by its id (a token names its key by id).
    """

    MAX_KEYS = 10_000  # cleared whole when full: a deployment has tens of keys

    def __init__(self) -> None:
        self._id_of_digest: dict[str, str] = {}
        self._by_id: dict[str, tuple[KeyInfo, float]] = {}
        self._lock = threading.Lock()

    def remember(self, info: KeyInfo, key: str | None = None) -> None:
        with self._lock:
            if len(self._by_id) >= self.MAX_KEYS:
                self._by_id.clear()
                self._id_of_digest.clear()
            self._by_id[info.id] = (info, time.time())
            if key is not None:
                self._id_of_digest[_digest(key.strip())] = info.id

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._by_id.pop(key_id, None)
            for digest in [d for d, i in self._id_of_digest.items() if i == key_id]:
                del self._id_of_digest[digest]

    def forget_key(self, key: str) -> None:
        """Forget the key this very key verified as (a wrong secret for a known id evicts nothing)."""
        with self._lock:
            key_id = self._id_of_digest.get(_digest(key.strip()))
        if key_id is not None:
            self.forget(key_id)

    def recall(self, grace_s: float, key: str | None = None, key_id: str | None = None) -> tuple[KeyInfo, float] | None:
        """(the key's record, seconds since it was verified) for a key verified within `grace_s` and still
        unexpired by its record; None otherwise."""
        with self._lock:
            if key is not None:
                key_id = self._id_of_digest.get(_digest(key.strip()))
            found = self._by_id.get(key_id) if key_id is not None else None
        if found is None:
            return None
        info, verified_at = found
        age_s = time.time() - verified_at
        if age_s > grace_s or info.state() != "active":
            return None
        return info, age_s
