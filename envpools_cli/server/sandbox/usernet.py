"""User-mode networking for a network namespace of its own: slirp4netns.

A sandbox that may use the internet (a task's ``allow_internet``, an image build) gets a
network namespace of its own, never the host's: slirp4netns, attached from outside,
gives it a tap device and NAT to the outside through the host's sockets. The host's
loopback is not reachable from it (``--disable-host-loopback``: the backend's API and
every service bound to 127.0.0.1 stay out of reach), and slirp4netns runs in a sandbox of
its own (``--enable-sandbox``, ``--enable-seccomp``) because it parses what the task sends.

Inside, the namespace has ``tap0`` at 10.0.2.100, the gateway 10.0.2.2 and a DNS
forwarder at 10.0.2.3 (``RESOLV_CONF``).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time

__all__ = ["RESOLV_CONF", "UserNetwork", "slirp4netns", "slirp_argv"]

RESOLV_CONF = "nameserver 10.0.2.3\noptions edns0\n"
_START_SEC = 20.0


def slirp4netns() -> str | None:
    return shutil.which("slirp4netns")


def slirp_argv(
    executable: str,
    pid: int | str,
    *,
    ready_fd: int | str,
    exit_fd: int | str,
    userns: str | None = None,
) -> list[str]:
    """slirp4netns for the network namespace of ``pid`` (and its user namespace, if given)."""
    argv = [executable, "--configure", "--mtu=65520", "--disable-host-loopback"]
    argv += ["--enable-sandbox", "--enable-seccomp"]
    argv += [f"--ready-fd={ready_fd}", f"--exit-fd={exit_fd}"]
    if userns:
        argv.append(f"--userns-path={userns}")
    return [*argv, str(pid), "tap0"]


class UserNetwork:
    """slirp4netns attached to one process's network namespace, until ``stop``."""

    def __init__(self, pid: int, *, join_userns: bool = False) -> None:
        executable = slirp4netns()
        if executable is None:
            raise OSError("slirp4netns is not installed: a sandbox cannot get a network")
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        self._exit_w: int | None = exit_w
        userns = f"/proc/{pid}/ns/user" if join_userns else None
        argv = slirp_argv(executable, pid, ready_fd=ready_w, exit_fd=exit_r, userns=userns)
        # A file, not a pipe: nobody reads it while it runs, and a full pipe would stall it.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._errors,
                pass_fds=(ready_w, exit_r),
                start_new_session=True,
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready, _, _ = select.select([ready_r], [], [], _START_SEC)
            answer = os.read(ready_r, 1) if ready else b""
        finally:
            os.close(ready_r)
        if answer != b"1":
            self.stop()
            self._errors.seek(0)
            errors = self._errors.read().decode("utf-8", "replace").strip().splitlines()
            self._errors.close()
            raise OSError(f"slirp4netns did not start: {(errors or ['no output'])[-1]}")

    def stop(self) -> None:
        """Close its exit descriptor (it leaves by itself), then make sure it is gone."""
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        deadline = time.monotonic() + 2
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(5)
        self._errors.close()
