"""The access the running service leaves for the CLI on its host: private, and never the admin key
that keeps the API manageable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from finops.store import Store
from finops.store.keys import LastAdminKey, create_key, list_keys, revoke_key
from finops.store.local_access import KEY_NAME, access_file, grant, read, withdraw


def test_the_access_file_is_new_private_and_never_follows_a_link(store: Store, tmp_path: Path) -> None:
    path = access_file(store.path)
    path.write_text("old")
    path.chmod(0o644)
    access = grant(store, "http://127.0.0.1:8080")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and read(store.path) == access
    target = tmp_path / "elsewhere.json"
    target.write_text("untouched")
    path.unlink()
    path.symlink_to(target)
    grant(store, "http://127.0.0.1:8080")
    assert target.read_text() == "untouched" and not path.is_symlink()
    [active] = [k for k in list_keys(store) if k.name == KEY_NAME and k.revoked_at is None]  # the older ones revoked
    withdraw(store)
    assert not path.exists() and read(store.path) is None
    assert all(k.revoked_at is not None for k in list_keys(store) if k.name == KEY_NAME)
    assert active.role == "admin"


def test_the_services_own_key_does_not_count_as_the_last_admin(store: Store) -> None:
    grant(store, "http://127.0.0.1:8080")
    admin, _ = create_key(store, "admin", None, "the operator")
    with pytest.raises(LastAdminKey):
        revoke_key(store, admin.key_id, keep_an_admin=True)  # the service's key ends with the service
    second, _ = create_key(store, "admin", None, "a second operator")
    assert revoke_key(store, admin.key_id, keep_an_admin=True)
