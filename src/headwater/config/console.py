"""``console:``: how the web console's login cookies are sent."""

from __future__ import annotations

from pydantic import Field

from headwater.config.base import Strict


class ConsoleConfig(Strict):
    """The console at ``/console/`` on ``headwater serve``."""

    secure_cookies: bool = Field(
        default=False,
        description="Mark the login cookie Secure (sent over https only). Set it when serve "
        "sits behind an https proxy; a request that reaches serve over https gets a Secure "
        "cookie either way.",
    )
