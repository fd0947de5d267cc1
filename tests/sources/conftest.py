from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .sftp_server import ServerThread, SftpServer


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    server = ServerThread(Path(tmp_path_factory.mktemp("sftp")))
    running = server.start()
    try:
        yield running
    finally:
        server.stop()
