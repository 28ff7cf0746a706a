"""Command line: ``titan-grpc serve`` (also ``python -m titan_grpc``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from titan_grpc import __version__
from titan_grpc.cli import add_client_commands, run_client_command
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="titan-grpc", description="TITAN gRPC exchange gateway")
    parser.add_argument("--version", action="version", version=f"titan-grpc {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the gRPC server (the default)")
    serve.add_argument("--address", help="HOST:PORT to listen on (overrides TITAN_GRPC_ADDRESS)")
    serve.add_argument("--env-file", default=".env", help="optional .env file (default: .env)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT); simulated venues are "
        "per process, so use more than 1 for market data scale-out or real mode",
    )
    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command not in (None, "serve"):
        return run_client_command(args)
    env_file = getattr(args, "env_file", ".env")
    try:
        environ = dict(os.environ)
        if getattr(args, "address", None):
            environ["TITAN_GRPC_ADDRESS"] = args.address
        # Start-up rules join the value checks: every problem is reported at once.
        from titan_grpc.startup import startup_problems

        settings = load_settings(environ, env_file=env_file, checks=startup_problems)
    except ConfigError as error:
        for problem in error.problems:
            print(f"titan-grpc: configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # Imported late so `--help` and config errors do not need the generated code.
    from titan_grpc.server import serve

    workers = getattr(args, "workers", 1)
    if workers > 1:
        from titan_grpc.workers import run_workers

        return run_workers(settings, workers)
    try:
        asyncio.run(serve(settings))
    except ConfigError as error:
        for problem in error.problems:
            print(f"titan-grpc: cannot start: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
