"""Agent output is untrusted: no escape sequences or control characters reach a terminal."""

from __future__ import annotations

import re

__all__ = ["clean"]

# CSI / OSC / DCS and other ESC sequences, then the remaining C0/C1 controls but tab.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS/SOS/PM/APC ... ST
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"  # every other escape (nF, Fp, Fe, Fs)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A lone surrogate (JSON can carry one as "\ud800") cannot be written as UTF-8 at all.
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean(text: str, *, keep_newlines: bool = False) -> str:
    text = _SURROGATES.sub("\ufffd", _ESCAPES.sub("", text))
    if keep_newlines:
        return _CONTROLS.sub("", text.replace("\r\n", "\n"))
    return _CONTROLS.sub("", text.replace("\n", " ").replace("\r", " "))
