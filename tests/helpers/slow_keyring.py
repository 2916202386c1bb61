"""A keyring backend that hangs, like a locked Secret Service collection."""

from __future__ import annotations

import time

from keyring.backend import KeyringBackend


class HangingKeyring(KeyringBackend):
    priority = 10  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(30)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        time.sleep(30)

    def delete_password(self, service: str, username: str) -> None:
        time.sleep(30)
