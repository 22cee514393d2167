"""The ``ferrolock`` command.

``ferrolock run LOCKFILE -- CMD...`` is the ``flock(1)`` of this library: it holds LOCKFILE (waiting in
the kernel) while CMD runs, writes a holder record naming CMD's program (never its arguments, which may
hold secrets: the record is readable by whoever can read the lock file), and exits with CMD's status.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from . import CoordLock, FileLock, LockError, Timeout, __version__, connect

# Signals a runner passes on to its command, so Ctrl-C or a supervisor's SIGTERM reach the work, not
# just the lock holder (which then exits with the command's status and releases the lock).
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("ferrolock run: no command given (usage: ferrolock run LOCKFILE -- CMD...)", file=sys.stderr)
        return 2
    timeout = 0.0 if args.nonblock else (-1.0 if args.timeout is None else args.timeout)
    purpose = args.purpose or _default_purpose(command)
    lock: FileLock | CoordLock
    try:
        if args.url:
            lock = connect(args.url).lock(args.lockfile, shared=args.shared, purpose=purpose)
        else:
            lock = FileLock(args.lockfile, shared=args.shared, purpose=purpose)
    except LockError as exc:
        print(f"ferrolock: {exc}", file=sys.stderr)
        return 1
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        if args.verbose or not args.nonblock:
            print(f"ferrolock: {exc}", file=sys.stderr)
        return int(args.conflict_exit_code)
    except (OSError, LockError) as exc:
        print(f"ferrolock: {exc}", file=sys.stderr)
        return 1
    try:
        return _run_command(command)
    finally:
        lock.release()


def _seconds(text: str) -> float:
    """``-w``: seconds to wait, 0 or more; ``inf`` waits forever. NaN and negative values are refused
    (a negative timeout waits forever in the library, which ``-w -1`` would not make anyone expect)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more (inf waits forever), not {text!r}")
    return value


def _exit_status(text: str) -> int:
    """``-E``: an exit status the shell can see unchanged (it keeps only the low 8 bits, so 256 read as 0,
    success, on a conflict)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"expected an exit status from 0 to 255, not {text!r}")
    return value


def _default_purpose(command: list[str]) -> str:
    """What a record says by default: the program's name only. Arguments can hold tokens and
    passwords, and a record is readable by anyone who can read the lock file, after the command ends."""
    return f"ferrolock run: {os.path.basename(command[0]) or command[0]}"


def _run_command(command: list[str]) -> int:
    try:
        child = subprocess.Popen(command)
    except FileNotFoundError:
        print(f"ferrolock: {command[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"ferrolock: {command[0]}: permission denied", file=sys.stderr)
        return 126

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Like a shell: a command killed by signal N exits 128 + N.
    return 128 - status if status < 0 else status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferrolock", description="Cross-process locks that wait in the kernel.")
    parser.add_argument("--version", action="version", version=f"ferrolock {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True)

    run = sub.add_parser(
        "run",
        help="hold a lock file while a command runs (like flock(1))",
        description="Hold LOCKFILE while CMD runs; exit with CMD's status. The holder record names CMD's "
        "program, not its arguments (anyone who can read LOCKFILE can read the record).",
    )
    run.add_argument("--shared", "-s", action="store_true", help="take a shared lock (default: exclusive)")
    run.add_argument(
        "--timeout", "-w", type=_seconds, metavar="S", help="give up after S seconds (default, or inf: wait forever)"
    )
    run.add_argument("--nonblock", "-n", action="store_true", help="fail at once if the lock is held")
    run.add_argument(
        "--conflict-exit-code",
        "-E",
        type=_exit_status,
        default=1,
        metavar="N",
        help="exit status (0-255) when the lock could not be taken (default 1)",
    )
    run.add_argument(
        "--purpose", help="purpose for the holder record (default: the program's name; never its arguments)"
    )
    run.add_argument("--verbose", "-v", action="store_true", help="report conflicts on stderr even with -n")
    run.add_argument(
        "--url", help="hold the lock NAME of this coordinator (file://DIR or postgresql://...) instead of a lock file"
    )
    run.add_argument(
        "lockfile", metavar="LOCKFILE|NAME", help="the lock file (created if missing), or with --url the lock name"
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    run.set_defaults(handler=_run)

    status = sub.add_parser(
        "status",
        help="every lock under DIRs: what it guards, held or free, by whom, stale records",
        description="Find every lock ferrolock or the legacy modules use under DIR... (default: .) and show "
        "what each guards, whether it is held (exclusive or shared) and by whom, and which claim records "
        "are stale.",
    )
    status.add_argument("dirs", nargs="*", default=["."], metavar="DIR")
    status.add_argument("--json", action="store_true", help="machine-readable output (schema: version 1)")
    status.add_argument("--url", help="list the locks of this coordinator (file://DIR or postgresql://...) instead")
    status.set_defaults(handler=_status)

    schema = sub.add_parser(
        "schema",
        help="create or upgrade the coordinator's PostgreSQL schema (for an administrator)",
        description="Create or upgrade the coordinator's schema in the database of URL (what the first user "
        "does automatically when its role may), or print the SQL with --sql.",
    )
    schema.add_argument("--url", help="postgresql://... (schema= chooses the schema name)")
    schema.add_argument("--sql", action="store_true", help="print the SQL instead of applying it")
    schema.add_argument("--schema", default="ferrolock", help="schema name for --sql (default ferrolock)")
    schema.set_defaults(handler=_schema)

    clean = sub.add_parser(
        "clean",
        help="remove lock files nobody uses and stale claim records (safe while the fleet runs)",
        description="Remove, under DIR... (default: .), lock files that nobody holds or has open and claim "
        "records whose holder is dead. Every removal takes the file exclusively first (see the README's on-disk "
        "protocol), so it is safe while other processes hold and wait for locks.",
    )
    clean.add_argument("dirs", nargs="*", default=["."], metavar="DIR")
    clean.add_argument("--dry-run", "-n", action="store_true", help="only say what would be removed")
    clean.add_argument("--json", action="store_true", help="machine-readable output")
    clean.set_defaults(handler=_clean)

    bench = sub.add_parser("bench", help="measure ferrolock against fcntl.flock, filelock and portalocker")
    bench.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    bench.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    bench.add_argument("--plot", metavar="PNG", help="also draw the comparison (needs ferrolock[plot])")
    bench.add_argument(
        "--scaling", action="store_true", help="cost against size for each hot path (curves, not the table)"
    )
    bench.add_argument(
        "--url",
        help="measure the coordinator on this postgresql:// server instead: against the server's own advisory "
        "lock, a pg_try_advisory_lock poll loop and tooz (if installed)",
    )
    bench.set_defaults(handler=_bench)
    return parser


def _status(args: argparse.Namespace) -> int:
    if args.url:
        from ._coord import print_status

        return print_status(args.url, args.json)
    from ._status import status

    return status([os.path.abspath(d) for d in args.dirs], args.json)


def _schema(args: argparse.Namespace) -> int:
    from ._ferrolock import _coord_schema_sql

    if args.sql:
        print(_coord_schema_sql(args.schema))
        return 0
    if not args.url:
        print("ferrolock schema: give --url postgresql://... (or --sql)", file=sys.stderr)
        return 2
    try:
        coord = connect(args.url)  # creates or upgrades the schema, as any first user would
    except LockError as exc:
        print(f"ferrolock: {exc}", file=sys.stderr)
        return 1
    print(f"ferrolock: the coordinator schema at {coord.url} is ready")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from ._status import clean

    return clean([os.path.abspath(d) for d in args.dirs], args.dry_run, args.json)


def _bench(args: argparse.Namespace) -> int:
    if args.url is not None:
        return _bench_coord(args)
    if args.scaling:
        from ._bench_scaling import main as scaling_main

        return scaling_main(quick=args.quick, json_path=args.json, plot_path=args.plot)
    from .benchmark import main as bench_main

    return bench_main(quick=args.quick, json_path=args.json, plot_path=args.plot)


def _bench_coord(args: argparse.Namespace) -> int:
    import json

    from ._bench_coord import lease_of, run, table

    if args.plot:
        print("ferrolock: --plot is not available with --url", file=sys.stderr)
        return 2
    if not args.url.startswith(("postgresql://", "postgres://")):
        print("ferrolock: bench --url measures a PostgreSQL coordinator (postgresql://...)", file=sys.stderr)
        return 2
    results = run(args.url, args.quick)
    print(table(results, lease_of(args.url)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except OSError as exc:  # a bad DIR, a permission problem: a message, not a traceback
        print(f"ferrolock: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
