"""The embedded broker: kombu's filesystem transport, repaired.

kombu's stock filesystem transport creates a message file and then writes into it, so a
consumer polling the folder can read it empty or half-written; the JSONDecodeError that
follows is not a channel error, and the Celery worker exits with "Unrecoverable error"
(celery/kombu#1551). Here a publisher writes the whole message into a staging folder on
the same filesystem and `os.replace`s it into the queue folder, so a file in the queue is
always complete; exchange tables are replaced the same way. A consumer claims a message
by unlinking it (exactly one consumer wins), and a file that still cannot be decoded (a
disk that filled up, a hand-made file) is logged once and moved to the bad folder instead
of killing the worker.

Select it with `CELERY_BROKER_URL=atomicfs://` (the default); the folders come from the
transport options that `controlplane/settings.py` sets, and are created by the first
process that opens a channel, never at import time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

SCHEME = "atomicfs"
logger = logging.getLogger(__name__)

Table = list[filesystem.exchange_queue_t]


def write_atomically(staging: Path, target: Path, data: bytes) -> None:
    """Make `data` appear at `target` whole or not at all: readers never see a partial file."""
    temporary = staging / f".{target.name}.{uuid.uuid4().hex}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ChannelError(f"Cannot write {target}: {exc}") from exc


class Channel(filesystem.Channel):
    """Atomic publish, claim by unlink, and bad messages moved aside."""

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        for folder in (self.data_folder_in, self.data_folder_out, self.staging_folder, self.bad_folder,
                       self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    @property
    def staging_folder(self) -> Path:
        return Path(self.transport_options.get("staging_folder", Path(self.data_folder_out).parent / "staging"))

    @property
    def bad_folder(self) -> Path:
        return Path(self.transport_options.get("bad_folder", Path(self.data_folder_in).parent / "bad"))

    # ---- messages ----

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:
        # Nanoseconds of the system-wide monotonic clock, zero-padded, so that sorting the
        # folder listing is publish order across processes.
        name = f"{time.monotonic_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        write_atomically(self.staging_folder, Path(self.data_folder_out) / name, str_to_bytes(dumps(payload)))

    def _get(self, queue: str) -> dict[str, Any]:
        suffix = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        for filename in sorted(os.listdir(folder)):
            if filename.partition(".")[2] != suffix:
                continue
            path = folder / filename
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # another consumer took it
                continue
            except OSError as exc:
                raise ChannelError(f"Cannot read file {str(path)!r} from queue.") from exc
            payload = self._decode(raw)
            if payload is None:
                self._move_aside(path, len(raw))
                continue
            try:
                path.unlink()
            except FileNotFoundError:  # another consumer read it too, and claimed it first
                continue
            return payload
        raise Empty()

    def _decode(self, raw: bytes) -> dict[str, Any] | None:
        """The message, or None when the virtual transport could not deliver it."""
        try:
            payload = loads(bytes_to_str(raw))
            self.Message(payload, channel=self)
        except Exception:  # any way a file can be garbage: empty, truncated, not JSON, not a message
            return None
        return payload

    def _move_aside(self, path: Path, size: int) -> None:
        try:
            os.replace(path, self.bad_folder / path.name)
        except FileNotFoundError:  # another consumer moved it first, and logged it
            return
        except OSError as exc:
            raise ChannelError(f"Cannot move undecodable message {str(path)!r} aside: {exc}") from exc
        logger.warning("Broker message %s (%d bytes) cannot be decoded; moved to %s", path, size, self.bad_folder)

    # ---- exchange tables ----

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: table if binding in table else [binding, *table])

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any) -> None:
        # The virtual channel's bookkeeping, not the stock filesystem one, which rewrites the table in place.
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: [row for row in table if row != binding])

    def _update_table(self, exchange: str, change: Callable[[Table], Table]) -> None:
        """Read-modify-replace under one lock, so concurrent binders never lose each other's rows."""
        file = self._exchange_file(exchange)
        with open(self.control_folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            table = self.get_table(exchange)
            changed = change(table)
            if changed != table or not file.exists():
                write_atomically(self.staging_folder, file, str_to_bytes(dumps(changed)))


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = virtual.BrokerState()
    driver_type = SCHEME
    driver_name = SCHEME

    @property
    def default_connection_params(self) -> dict[str, Any]:
        # A folder has no host: with the virtual default ('localhost') kombu warns on every connect.
        return {"port": self.default_port, "hostname": ""}


def register() -> None:
    """Let kombu resolve `atomicfs://`: it looks the scheme up in its aliases when a connection opens."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
