"""Exit statuses of ``genreslice``, and the one place where a command's errors become one line and a status."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable

from genreslice.errors import GenresliceError, ParameterError

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM and SIGHUP end with 128 + their number too
#: Commands that keep their finished work when stopped, so that running them again resumes.
RESUMABLE = ("build", "train", "demo")


def run_reporting_errors(command: str, run: Callable[[], int], *, nested: bool = False) -> int:
    """Run one command; errors become one line on standard error and an exit status.

    Parameters
    ----------
    command : str
        The command's name, as its messages show it: ``genreslice COMMAND: error: ...``.
    run : callable
        Runs the command and returns its exit status.
    nested : bool
        Run by another command (the demo runs build, train, evaluate and predict): Ctrl-C and stop signals are
        left to the outer command, which reports them once.

    Returns
    -------
    int
        The command's exit status; a bad setting ends the process with :data:`EXIT_USAGE`, as argparse does.
    """
    try:
        return run()
    except ParameterError as err:
        with contextlib.suppress(AttributeError, OSError):  # as argparse reports a usage error
            sys.stderr.write(f"genreslice {command}: error: {err}\n")
        sys.exit(EXIT_USAGE)
    except (GenresliceError, NotADirectoryError) as err:
        print(f"genreslice {command}: error: {err}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt as err:
        if nested:
            raise
        signum = getattr(err, "signum", signal.SIGINT)
        stopped = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        resume = "; run the same command again to resume" if command in RESUMABLE else ""
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"\ngenreslice {command}: {stopped}{resume}.", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # Output piped into a command that stopped reading (``| head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        # Disk full, permissions, a vanished folder: say which file, without a traceback.
        print(f"genreslice {command}: error: {err}", file=sys.stderr)
        return EXIT_FATAL
