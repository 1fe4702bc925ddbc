"""One window per library: opening Confidant again brings the running window to the front.

The window that holds the library's lock (app/core/instance.py) listens on a local socket
(QLocalServer: a Unix socket, a named pipe on Windows) named after the data directory and the
user. A second launch that finds the lock taken asks through it and ends with exit code 0 once
the running window answers. The window stops listening as soon as it starts closing, so a
launch during a quit does not talk to a window on its way out: it waits for the lock instead.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

REQUEST = b"raise\n"
ANSWER = b"ok\n"


def server_name(home: Path) -> str:
    """The same for every launch on one data directory by one user; different otherwise."""
    try:
        key = str(Path(home).resolve())
    except OSError:
        key = str(Path(home).absolute())
    user = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    return f"confidant-{user}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class RaiseServer(QObject):
    """Listens for later launches; `raise_requested` is emitted for each one."""

    raise_requested = Signal()

    def __init__(self, home: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(home)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        # Only the holder of the library's lock listens, so a socket left by that name is a
        # crashed window's.
        QLocalServer.removeServer(self.name)
        if not self._server.listen(self.name):
            log.warning("not listening for later launches: %s", self._server.errorString())

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while (sock := self._server.nextPendingConnection()) is not None:
            sock.disconnected.connect(sock.deleteLater)
            sock.readyRead.connect(lambda s=sock: self._read(s))
            self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        if not sock.canReadLine():
            return
        if bytes(sock.readLine().data()) == REQUEST and self.listening:
            self.raise_requested.emit()
            sock.write(ANSWER)
            sock.flush()
        sock.disconnectFromServer()


def bring_forward(home: Path, timeout_ms: int = 3000) -> bool:
    """Ask the window running on `home` to come to the front; True once it said it did."""
    sock = QLocalSocket()
    sock.connectToServer(server_name(home))
    if not sock.waitForConnected(timeout_ms):
        return False
    try:
        sock.write(REQUEST)
        if not sock.waitForBytesWritten(timeout_ms):
            return False
        while not sock.canReadLine():
            if not sock.waitForReadyRead(timeout_ms):
                return False
        return bytes(sock.readLine().data()) == ANSWER
    finally:
        sock.abort()
