"""``genreslice``: the command line. The root parser, logging set-up and stop signals live here; each command is a
module of :mod:`genreslice.scripts.commands` that registers its own parser, and
:mod:`genreslice.scripts.exit_status` turns errors into exit statuses."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading

from genreslice import __version__
from genreslice.scripts.commands import build, compare, demo, evaluate, export, inspect, predict, serve, train
from genreslice.scripts.exit_status import run_reporting_errors

logger = logging.getLogger("genreslice")

#: The commands in the order ``genreslice --help`` lists them.
COMMANDS = (build, inspect, train, evaluate, predict, export, serve, compare, demo)
#: What ``-v`` does, before or after the command.
VERBOSE_HELP = ("log every file that was not built (failed, skipped, too short) with its reason, and show "
                "TensorFlow's start-up lines")
#: Signals that stop a command cleanly, as Ctrl-C does.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived (SIGINT, SIGTERM or SIGHUP). Raised like Ctrl-C's KeyboardInterrupt, so every
    clean-up path written for Ctrl-C (killing workers and SoX, keeping finished work) runs for the others too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_raise():
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise :class:`StopRequested` in the main thread.

    A second signal while the first one's clean-up runs ends the process at once: its workers and SoX processes
    die with it (the kernel kills them), finished tracks and epochs are on disk already, and the locks are the
    kernel's. A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        if received:
            with contextlib.suppress(OSError):
                os.write(2, f"\ngenreslice: stopped at once ({signal.Signals(signum).name} while stopping).\n".encode())
            os._exit(128 + received[0])
        received.append(signum)
        raise StopRequested(signum)

    previous = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def make_parser() -> argparse.ArgumentParser:
    """The ``genreslice`` parser: the global options, then one subcommand per module of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="genreslice",
        description=("Music genre recognition at data-set scale: build spectrogram-slice data sets from audio, train a "
                     "CNN on them, evaluate it, and predict the genre of songs by voting over their slices."),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"genreslice {__version__}",
                        help="print the version and exit")
    # Not required: a bare ``genreslice`` prints this help (see main).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register_subcommand(commands)
    for subparser in commands.choices.values():
        # Also after the command (``genreslice build ... -v``). SUPPRESS: when not given there, the root's value
        # stands instead of being reset to False.
        subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                               help=VERBOSE_HELP + " (also accepted before the command)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``genreslice`` command; returns its exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # As git does, a bare ``genreslice`` shows what it can do, on standard output. Exit 0 (git exits 1 after
        # its help): nothing went wrong, and ``genreslice | less`` should not look like a failure.
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="genreslice: %(levelname)s: %(message)s")
    # Dask logs every connection and worker start at INFO, in this process and in the workers it starts; its
    # warnings (a worker died and was restarted) stay. Read when Dask is first imported.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    with stop_signals_raise():  # also while an error or interruption is reported
        return run_reporting_errors(args.command, lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
