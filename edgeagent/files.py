"""Small file helpers shared by the agent's persistent state."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Temp file, fsync, rename: a crash leaves the old file or the new one, never half of one.

    The file is created with `mode` (the umask aside, it is set after creation), readable by
    the agent's user alone by default: the persisted config holds sealed credentials.
    `durable=False` skips the fsync: the file then survives the process dying (the kernel
    has it), not the machine, for data rewritten too often to sync each time.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
