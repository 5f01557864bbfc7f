"""The console's users: a JSON file of names, roles and argon2id password hashes.

The file (``PROPWATCH_CONSOLE_USERS_FILE``, written by ``propwatch console add-user``) is::

    {"users": [{"name": "analyst-7", "role": "reviewer", "hash": "$argon2id$v=19$..."}]}

It holds no password, only argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
profile), and is written with mode 0600. The console reads it when it starts, and again when it
changes (:meth:`Users.refresh`, on requests, at most every :data:`RELOAD_CHECK_S` seconds): a user
added, removed or given another role counts from their next request, without a restart; a removed
user's sessions end there. A file that is no longer a valid users file (a half-written edit) is
logged and counted, and the console keeps the users it had until the file changes again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["reviewer", "supervisor", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
"""``reviewer`` decides pending reviews; ``supervisor`` also supersedes a decision in force and
sees everyone's decisions; ``auditor`` reads everything and decides nothing."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""A user name: what the decisions record as ``reviewer`` (an id, not a person's name, if you
publish reports)."""
FILE_MODE = 0o600
RELOAD_CHECK_S = 3.0
"""How often, at most, the console looks at the users file for a change (a ``stat``)."""

log = logging.getLogger(__name__)


class UsersFileError(ValueError):
    """The users file cannot be read, or is not a users file; the message says which and why."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def decides(self) -> bool:
        """Whether this user may write decisions (an auditor only reads)."""
        return self.role in ("reviewer", "supervisor")

    @property
    def supervises(self) -> bool:
        """Whether this user may supersede a decision in force."""
        return self.role == "supervisor"

    @property
    def sees_all(self) -> bool:
        """Whether this user sees every reviewer's decisions (else only their own)."""
        return self.role in ("supervisor", "auditor")


def _entries(path: Path) -> dict[str, tuple[User, str]]:
    """The users in ``path`` by name, each with its hash. Raises :class:`UsersFileError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsersFileError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsersFileError(f"{path} is not a JSON users file: {type(exc).__name__}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list):
        raise UsersFileError(f'{path}: expected {{"users": [...]}}')
    entries: dict[str, tuple[User, str]] = {}
    for i, row in enumerate(users):
        where = f"{path}: users[{i}]"
        if not isinstance(row, dict) or set(row) != {"name", "role", "hash"}:
            raise UsersFileError(f"{where} must be an object with exactly name, role and hash")
        name, role, hashed = row["name"], row["role"], row["hash"]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise UsersFileError(f"{where}: name must match {NAME.pattern}")
        if role not in ROLES:
            raise UsersFileError(f"{where}: role must be one of {', '.join(ROLES)}")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
            raise UsersFileError(f"{where}: hash must be an argon2 hash")
        if name in entries:
            raise UsersFileError(f"{where}: user {name} appears twice")
        entries[name] = (User(name, role), hashed)
    return entries


Stamp = tuple[int, int, int, int]
"""What tells a changed file: its device, inode, size and modification time (ns). ``add_user``
and a Kubernetes Secret's update both put a new file in place (a new inode)."""


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Users:
    """The users, and password checks that take the same time whether or not the user exists.
    Loaded from a file (:meth:`load`), they follow its changes (:meth:`refresh`)."""

    def __init__(
        self,
        entries: Mapping[str, tuple[User, str]],
        hasher: PasswordHasher | None = None,
        *,
        path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = dict(entries)
        self._hasher = hasher or PasswordHasher()
        # An unknown user's password is checked against this, so that it costs what a known one does.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.path = path
        """The file they follow (:meth:`refresh`); None: they never change."""
        self._clock = clock
        self._stamp: Stamp | None = None
        self._checked = clock()

    @classmethod
    def load(
        cls, path: Path, hasher: PasswordHasher | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> Users:
        """The users of the file at ``path``, following its changes. Raises :class:`UsersFileError`."""
        stamp = _stamp(path)  # before reading: a change while it is read is read again
        users = cls(_entries(path), hasher, path=path, clock=clock)
        users._stamp = stamp
        return users

    def refresh(self) -> str | None:
        """Read the file again if it changed since it was last read (looked at no more than every
        :data:`RELOAD_CHECK_S` seconds): ``reloaded``; ``invalid`` when it is no longer a users file
        (logged; the users read before stay, until the file changes again); None otherwise. Never
        raises. Call it from one thread (the event loop)."""
        now = self._clock()
        if self.path is None or now - self._checked < RELOAD_CHECK_S:
            return None
        self._checked = now
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            entries = _entries(self.path)
        except UsersFileError as exc:
            log.error(
                "the users file changed and cannot be read: %s; the %d users read before stay", exc, len(self)
            )
            return "invalid"
        before = {name: user for name, (user, _) in self._entries.items()}
        self._entries = entries  # one assignment: a password check in its thread sees one or the other
        after = {name: user for name, (user, _) in entries.items()}
        log.info(
            "users file read again: %d users (%d added, %d removed, %d changed role)",
            len(after),
            len(after.keys() - before.keys()),
            len(before.keys() - after.keys()),
            sum(1 for name in after.keys() & before.keys() if after[name] != before[name]),
        )
        if not after:
            log.warning("the users file has no users: nobody can log in")
        return "reloaded"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> User | None:
        entry = self._entries.get(name)
        return entry[0] if entry else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None. Blocks for one argon2 verification
        (tens of milliseconds), whatever the name: run it in an executor."""
        entry = self._entries.get(name)
        try:
            ok = self._hasher.verify(entry[1] if entry else self._dummy, password)
        except (VerificationError, InvalidHashError):
            ok = False
        return entry[0] if ok and entry else None


def add_user(path: Path, name: str, role: Role, password: str, hasher: PasswordHasher | None = None) -> bool:
    """Add ``name`` to the users file at ``path``, or replace their role and password; True when
    the user is new. Creates the file when missing; writes it whole (a new file, then a rename),
    with mode 0600. Raises :class:`UsersFileError` on a bad name, role, password or file."""
    if not NAME.fullmatch(name):
        raise UsersFileError(f"a user name must match {NAME.pattern}")
    if role not in ROLES:
        raise UsersFileError(f"a role is one of {', '.join(ROLES)}")
    if not password:
        raise UsersFileError("the password is empty")
    entries = _entries(path) if path.exists() else {}
    new = name not in entries
    entries[name] = (User(name, role), (hasher or PasswordHasher()).hash(password))
    rows = [{"name": user.name, "role": user.role, "hash": hashed} for user, hashed in entries.values()]
    text = json.dumps({"users": rows}, indent=2) + "\n"
    folder = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return new
