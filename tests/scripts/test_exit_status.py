"""How a command's errors become one line on standard error and an exit status, for the commands and for the demo,
which runs the commands' functions nested inside itself."""
from __future__ import annotations

import signal

import pytest

from genreslice.errors import GenresliceError, ParameterError
from genreslice.scripts.cli import StopRequested
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_USAGE, run_reporting_errors


def failing(error: BaseException):
    def run() -> int:
        raise error
    return run


def test_the_status_of_a_run_that_ends_is_returned(capsys):
    assert run_reporting_errors("predict", lambda: 3) == 3
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [GenresliceError("bad 'folder'"), NotADirectoryError("bad 'folder'"),
                                   PermissionError("bad 'folder'")])
@pytest.mark.parametrize("nested", [False, True])
def test_errors_become_one_line_and_status_1(capsys, error, nested):
    assert run_reporting_errors("build", failing(error), nested=nested) == EXIT_FATAL
    assert capsys.readouterr().err == "genreslice build: error: bad 'folder'\n"


def test_a_bad_setting_ends_the_process_with_status_2_as_argparse_does(capsys):
    with pytest.raises(SystemExit) as ended:
        run_reporting_errors("train", failing(ParameterError("epochs=0 must be at least 1")), nested=True)
    assert ended.value.code == EXIT_USAGE
    assert capsys.readouterr().err == "genreslice train: error: epochs=0 must be at least 1\n"


@pytest.mark.parametrize("command, error, status, line", [
    ("build", KeyboardInterrupt(), 130, "genreslice build: interrupted; run the same command again to resume."),
    ("train", StopRequested(signal.SIGTERM), 143,
     "genreslice train: stopped by SIGTERM; run the same command again to resume."),
    ("predict", KeyboardInterrupt(), 130, "genreslice predict: interrupted."),
])
def test_a_stop_is_reported_once_by_the_outer_command(capsys, command, error, status, line):
    assert run_reporting_errors(command, failing(error)) == status
    assert capsys.readouterr().err == f"\n{line}\n"
    with pytest.raises(KeyboardInterrupt):
        run_reporting_errors(command, failing(error), nested=True)
    assert capsys.readouterr().err == ""
