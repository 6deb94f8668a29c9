"""How a process on the service's host reaches the running service instead of the store file.

DuckDB lets one process write a file. While `finops serve` owns the store, it issues an admin key
for its own host and writes it, with its URL, to `<store>.service.json` beside the store (mode 0600,
so only the store's owner can read it). The CLI reads it to send its commands to the service. The
key is stored hashed like any other and revoked, and the file removed, when the service stops; a
crashed service's key is revoked by the next one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from finops.store.db import Store
from finops.store.keys import LOCAL_KEY_NAME as KEY_NAME
from finops.store.keys import create_key, list_keys, revoke_key


@dataclass(frozen=True)
class Access:
    url: str
    key: str


def access_file(db: Path) -> Path:
    return Path(db).with_name(Path(db).name + ".service.json")


def grant(store: Store, url: str) -> Access:
    """Revoke earlier local keys, issue a new admin key and write the access file (0600)."""
    for k in list_keys(store):
        if k.name == KEY_NAME and k.revoked_at is None:
            revoke_key(store, k.key_id)
    _, key = create_key(store, "admin", None, KEY_NAME)
    path = access_file(store.path)
    path.unlink(missing_ok=True)  # a new file, so never an old file's mode nor a link's target
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "key": key}, fh)
    return Access(url, key)


def withdraw(store: Store) -> None:
    """Revoke the local keys and remove the access file (the service is stopping)."""
    for k in list_keys(store):
        if k.name == KEY_NAME and k.revoked_at is None:
            revoke_key(store, k.key_id)
    access_file(store.path).unlink(missing_ok=True)


def read(db: Path) -> Access | None:
    """The running service's access, when this process may read it; None otherwise."""
    try:
        data = json.loads(access_file(db).read_text(encoding="utf-8"))
        return Access(str(data["url"]), str(data["key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
