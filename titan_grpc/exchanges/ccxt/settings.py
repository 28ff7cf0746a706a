"""A ccxt venue's settings, from the variables with its prefix (``CCXT_<ID>_``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from titan_grpc.config import venue_prefix
from titan_grpc.env import EnvReader, Secret
from titan_grpc.errors import ConfigError

_ID_RE = re.compile(r"^[a-z][a-z0-9]{1,40}$")


@dataclass(frozen=True)
class CcxtSettings:
    venue: str  # TITAN's venue id, "ccxt:okx"
    exchange_id: str  # ccxt's id, "okx"
    api_key: Secret = field(default_factory=lambda: Secret(""))
    secret: Secret = field(default_factory=lambda: Secret(""))
    password: Secret = field(default_factory=lambda: Secret(""))
    sandbox: bool = True
    # CCXT_<ID>_OPTIONS: deep-merged into ccxt's constructor config. Never shown (it may
    # hold a proxy's credentials).
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    watch: bool = True  # ccxt.pro watch_ticker for quote streams where the venue has it
    poll_seconds: float = 1.0  # quote/book polling interval otherwise

    @property
    def prefix(self) -> str:
        return venue_prefix(self.venue)


def load_ccxt_settings(venue: str, env: Mapping[str, str]) -> CcxtSettings:
    """Raises ConfigError, one line per bad variable (values of secrets never shown)."""
    _, _, exchange_id = venue.partition(":")
    prefix = venue_prefix(venue)
    reader = EnvReader(env)
    problems = reader.problems
    if not _ID_RE.match(exchange_id):
        raise ConfigError([f"TITAN_VENUES: {venue}: expected ccxt:<exchange id> such as ccxt:okx"])
    options: dict[str, Any] = {}
    raw = env.get(f"{prefix}OPTIONS", "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.append(f"{prefix}OPTIONS: not valid JSON ({error.msg} at {error.pos})")
        else:
            if isinstance(parsed, dict):
                options = parsed
            else:
                problems.append(f"{prefix}OPTIONS: expected a JSON object")
    poll = 1.0
    raw_poll = env.get(f"{prefix}POLL_SECONDS", "").strip()
    if raw_poll:
        try:
            poll = float(raw_poll)
        except ValueError:
            problems.append(f"{prefix}POLL_SECONDS: expected a number, got {raw_poll!r}")
        else:
            if not 0.05 <= poll <= 3600:
                problems.append(f"{prefix}POLL_SECONDS: must be between 0.05 and 3600")
                poll = 1.0
    settings = CcxtSettings(
        venue=venue,
        exchange_id=exchange_id,
        api_key=Secret(env.get(f"{prefix}API_KEY", "").strip()),
        secret=Secret(env.get(f"{prefix}SECRET", "").strip()),
        password=Secret(env.get(f"{prefix}PASSWORD", "").strip()),
        sandbox=reader.boolean(f"{prefix}SANDBOX", True),
        options=options,
        watch=reader.boolean(f"{prefix}WATCH", True),
        poll_seconds=poll,
    )
    if bool(settings.api_key) != bool(settings.secret):
        problems.append(f"{prefix}API_KEY and {prefix}SECRET must be set together")
    if problems:
        raise ConfigError(problems)
    return settings
