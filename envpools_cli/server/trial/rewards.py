"""A verifier's reward: ``/logs/verifier/reward.json`` or ``reward.txt`` (Harbor's rules).

The verifier folder was written by the sandbox: only regular files are read (a link or
FIFO left under a reward's name is ignored), and only their first 64 KiB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from envpools_cli.server.sandbox.safefs import open_dir, read_at

__all__ = ["read_reward"]

_REWARD_LIMIT = 64 * 1024


def _reward_file(folder_fd: int, name: str) -> tuple[bytes | None, str | None]:
    data = read_at(folder_fd, name, _REWARD_LIMIT + 1)
    if data is not None and len(data) > _REWARD_LIMIT:
        return None, f"{name} is larger than {_REWARD_LIMIT // 1024} KiB"
    return data, None


def read_reward(folder: Path) -> tuple[float | None, dict[str, float], str | None]:
    """(primary reward, all rewards, problem): reward.json wins, reward.txt fills ``reward``.

    Only regular files are read (a link or FIFO the verifier left there is ignored), and
    only their first 64 KiB.
    """
    rewards: dict[str, float] = {}
    problem = None
    try:
        folder_fd = open_dir(folder)
    except OSError:
        return None, {}, None
    try:
        raw_json, problem = _reward_file(folder_fd, "reward.json")
        if raw_json is not None:
            try:
                loaded = json.loads(raw_json)
            except ValueError as exc:
                loaded, problem = None, f"reward.json is not valid JSON: {exc}"
            if isinstance(loaded, dict):
                for key, value in loaded.items():
                    if (
                        isinstance(value, int | float)
                        and not isinstance(value, bool)
                        and (value == value and abs(value) != float("inf"))
                    ):
                        rewards[str(key)] = float(value)
            elif isinstance(loaded, int | float) and not isinstance(loaded, bool):
                rewards["reward"] = float(loaded)
        raw_txt, txt_problem = (
            _reward_file(folder_fd, "reward.txt") if "reward" not in rewards else (None, None)
        )
    finally:
        os.close(folder_fd)
    problem = problem or txt_problem
    if raw_txt is not None:
        text = raw_txt.decode("utf-8", errors="replace").strip()
        try:
            rewards["reward"] = float(text.split()[0]) if text else float("nan")
        except ValueError:
            problem = f"reward.txt does not hold a number: {text[:80]!r}"
        if rewards.get("reward") != rewards.get("reward"):  # NaN: empty file
            rewards.pop("reward")
            problem = "reward.txt is empty"
    if not rewards:
        return None, {}, problem
    primary = rewards.get("reward", next(iter(rewards.values())))
    return primary, rewards, None
