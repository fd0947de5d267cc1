"""A real SFTP server on 127.0.0.1 for the tests: asyncssh in a background thread.

It serves one directory (chrooted), accepts user ``shop`` with a password or with a
generated key, and presents a generated host key that the tests trust through a
known_hosts file -- the same files a user would configure.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh

USERNAME = "shop"
PASSWORD = "s3cret-sftp-pass"


@dataclass
class SftpServer:
    port: int
    root: Path  # what the server shows as /
    known_hosts: Path
    client_key: Path

    def url(self, remote_path: str) -> str:
        return f"sftp://{USERNAME}@127.0.0.1:{self.port}/{remote_path.lstrip('/')}"


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD


class ServerThread:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> SftpServer:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(timeout=30)

    async def _listen(self) -> SftpServer:
        root = self.workdir / "remote"
        root.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        key_file = self.workdir / "id_ed25519"
        key_file.write_bytes(client_key.export_private_key())
        key_file.chmod(0o600)
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode("ascii"))
        self.acceptor = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            server_factory=_Auth,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
            allow_scp=False,
        )
        port = self.acceptor.sockets[0].getsockname()[1]
        known_hosts = self.workdir / "known_hosts"
        public = host_key.export_public_key().decode("ascii").strip()
        known_hosts.write_text(f"[127.0.0.1]:{port} {public}\n")
        return SftpServer(port=port, root=root, known_hosts=known_hosts, client_key=key_file)

    def stop(self) -> None:
        async def close() -> None:
            self.acceptor.close()
            await self.acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
