"""The console's users: a JSON file of names, roles and argon2id password hashes.

The file (``PROPWATCH_CONSOLE_USERS_FILE``, written by ``propwatch console add-user``) is::

    {"users": [{"name": "analyst-7", "role": "reviewer", "hash": "$argon2id$v=19$..."}]}

It holds no password, only argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
profile), and is written with mode 0600. It is read once when the console starts: restart the
console after adding a user.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
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
    except (OSError, UnicodeDecodeError, ValueError) as exc:
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


class Users:
    """The users, and password checks that take the same time whether or not the user exists."""

    def __init__(self, entries: Mapping[str, tuple[User, str]], hasher: PasswordHasher | None = None) -> None:
        self._entries = dict(entries)
        self._hasher = hasher or PasswordHasher()
        # An unknown user's password is checked against this, so that it costs what a known one does.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def load(cls, path: Path, hasher: PasswordHasher | None = None) -> Users:
        """The users of the file at ``path``. Raises :class:`UsersFileError`."""
        return cls(_entries(path), hasher)

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
