"""Stored credential values, encrypted at rest with a key kept outside the database.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256, from ``cryptography``) in the
``credentials`` table. The key lives in the OS keyring (service
``envpools-local-backend``, one entry per data folder) when one answers, else in
``credentials.key`` (mode 0600) next to the database; ``ENVPOOLS_KEYRING=file`` skips the
keyring. The database records only where the key is and a token that proves a key is
the right one, so a copy of the database, its WAL or a backup reveals no value, and a
lost key is reported as such instead of silently replaced by a new one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = ["KEY_FILE", "SERVICE", "Vault", "VaultError"]

SERVICE = "envpools-local-backend"
KEY_FILE = "credentials.key"
_PREFIX = "fernet:"
_CHECK = b"envpools credential key"


class VaultError(Exception):
    """The key that encrypts stored credentials cannot be found or is not the right one."""


class Vault:
    """Encrypts and decrypts credential values; the key is loaded (or made) on first use.

    ``meta_get``/``meta_set`` read and write the database's record of where the key is.
    """

    def __init__(
        self,
        data_dir: Path,
        meta_get: Callable[[str], str | None],
        meta_set: Callable[[str, str], None],
    ) -> None:
        self.data_dir = data_dir
        self._get = meta_get
        self._set = meta_set
        self._lock = threading.Lock()
        self._fernet: Fernet | None = None

    @property
    def key_file(self) -> Path:
        return self.data_dir / KEY_FILE

    @property
    def account(self) -> str:
        return str(self.data_dir.resolve())

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return stored.startswith(_PREFIX)

    def seal(self, value: str) -> str:
        return _PREFIX + self._key().encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        """The value of a stored credential (values from before encryption pass as they are)."""
        if not self.is_sealed(stored):
            return stored
        from cryptography.fernet import InvalidToken

        try:
            return self._key().decrypt(stored[len(_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise VaultError(
                "a stored credential cannot be decrypted with the current key; delete it "
                "and store it again"
            ) from None

    def where(self) -> str | None:
        """``keyring`` or ``file``: where the key is (None before the first credential)."""
        return self._get("credential_key") or None

    def reset(self) -> None:
        """Forget the key (once no stored value needs it): the next value gets a new one."""
        with self._lock:
            self._fernet = None
            self._set("credential_key", "")
            self._set("credential_key_check", "")

    # --- the key --------------------------------------------------------------------------

    def _key(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = self._load() if self.where() else self._create()
            return self._fernet

    def _create(self) -> Fernet:
        from cryptography.fernet import Fernet

        from envpools_cli import keystore

        key = Fernet.generate_key().decode()
        try:
            keystore.keyring_set(SERVICE, self.account, key)
            location = "keyring"
        except keystore.KeyringUnavailable:
            self._write_file(key)
            location = "file"
        fernet = Fernet(key.encode())
        self._set("credential_key_check", fernet.encrypt(_CHECK).decode())
        self._set("credential_key", location)
        return fernet

    def _load(self) -> Fernet:
        from cryptography.fernet import Fernet, InvalidToken

        from envpools_cli import keystore

        location = self.where()
        key: str | None
        if location == "keyring":
            try:
                key = keystore.keyring_get(SERVICE, self.account)
            except keystore.KeyringUnavailable as exc:
                raise VaultError(
                    f"the key of the stored credentials is in the OS keyring, which cannot be "
                    f"used now ({exc})"
                ) from None
            if not key:
                raise VaultError(
                    f"the key of the stored credentials is missing from the OS keyring "
                    f"({SERVICE} / {self.account}); delete the stored credentials and store "
                    "them again"
                )
        else:
            try:
                key = self.key_file.read_text().strip()
            except OSError:
                raise VaultError(
                    f"the key of the stored credentials ({self.key_file}) is missing; "
                    "delete the stored credentials and store them again"
                ) from None
        try:
            fernet = Fernet(key.encode())
            fernet.decrypt((self._get("credential_key_check") or "").encode())
        except (ValueError, InvalidToken):
            raise VaultError(
                "the key of the stored credentials is not the one they were stored with; "
                "delete the stored credentials and store them again"
            ) from None
        return fernet

    def _write_file(self, key: str) -> None:
        temporary = self.key_file.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        os.chmod(temporary, 0o600)
        temporary.replace(self.key_file)
