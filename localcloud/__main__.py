"""python -m localcloud [--profile instant|realistic] [--throttle-rate R] [--error-rate R]
                        [--port P] [--state DIR] [--ready-file FILE]
python -m localcloud cleanup     (remove what a killed local cloud left behind)

Prints the AWS endpoint to use (`provision --endpoint URL`, AWS_ENDPOINT_URL); runs until
SIGINT/SIGTERM, then terminates every instance, stops every database and removes its
network. Needs root (network namespaces, mounts) and PostgreSQL's server binaries."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "cleanup"])
    parser.add_argument("--port", type=int, default=0, help="port of the AWS endpoint (0: any free one)")
    parser.add_argument("--state", help="folder for instances' roots and databases (default: a temporary one)")
    parser.add_argument("--profile", default="instant", help="delays: instant or realistic")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="share of AWS calls throttled")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of AWS calls answered 500")
    parser.add_argument("--ready-file", help="write the endpoint URL here once serving")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if os.geteuid() != 0:
        print("error: the local cloud needs root (network namespaces, mounts)", file=sys.stderr)
        return 2
    from . import net

    if args.command == "cleanup":
        removed = net.cleanup_all()
        print(f"removed {len(removed)} leftover interface(s)/namespace(s)")
        return 0

    from .cloud import LocalCloud
    from .settings import SETTINGS

    try:
        SETTINGS.update({"profile": args.profile, "throttle_rate": args.throttle_rate, "error_rate": args.error_rate})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    own_state = args.state is None
    state = args.state or tempfile.mkdtemp(prefix="localcloud.")
    os.makedirs(state, exist_ok=True)
    os.chmod(state, 0o755)
    cloud = LocalCloud(state, args.port)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cloud.stopping.set)
        task = asyncio.create_task(cloud.run())
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(cloud.endpoint + "\n")
            os.replace(tmp, args.ready_file)
        print(cloud.endpoint, flush=True)
        await task

    try:
        asyncio.run(serve())
    finally:
        if own_state:
            shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
