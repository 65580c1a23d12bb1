"""The installed package: one ``genreslice`` import package, its version, a wheel that holds nothing else, and
imports that work where POSIX-only modules are missing."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import genreslice

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("metadata", "genre_getters", "pipeline", "training", "scripts")


def test_version_is_importable_and_printed_by_the_command(tmp_path):
    assert genreslice.__version__.count(".") == 2
    result = subprocess.run([sys.executable, "-m", "genreslice", "--version"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"genreslice {genreslice.__version__}"


@pytest.mark.slow
def test_wheel_holds_only_the_genreslice_package(tmp_path):
    # Built from a copy of the files git knows, so the checkout gets no build/ folder and stray files (a demo's
    # output, a virtual environment) cannot creep in.
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    source = tmp_path / "source"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                             "--wheel-dir", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheel").glob("genreslice-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"genreslice", f"genreslice-{genreslice.__version__}.dist-info"}
    for package in SUBPACKAGES:
        assert f"genreslice/{package}/__init__.py" in names
    assert "genreslice/metadata/fma_genres.csv" in names
    assert "genreslice/scripts/demo_corpus.py" in names  # the demo needs it at run time
    assert "genreslice/scripts/commands/build.py" in names
    assert not [name for name in names if "bench" in name or "synthetic_slices" in name or "/tests/" in name]
    entry_points = zipfile.ZipFile(wheel).read(f"genreslice-{genreslice.__version__}.dist-info/entry_points.txt")
    assert b"genreslice = genreslice.scripts.cli:main" in entry_points


def test_a_users_own_training_or_scripts_folder_does_not_shadow_ours(tmp_path):
    for name in ("training", "scripts", "pipeline"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user\\'s own package was imported')\n")
    code = ("import genreslice.training.voting as v, genreslice.pipeline.build as b, genreslice.scripts.cli as c; "
            "print(v.__file__, b.__file__, c.__file__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path) not in result.stdout


def test_every_module_imports_without_posix_only_modules(tmp_path):
    """As on Windows: no fcntl, resource, termios, pwd or grp, and the signal module without SIGKILL, SIGHUP..."""
    code = textwrap.dedent("""
        import importlib, pkgutil, signal, sys

        class NoPosix:
            BLOCKED = {"fcntl", "resource", "termios", "pwd", "grp", "tty", "pty"}
            def find_spec(self, name, path=None, target=None):
                if name in self.BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked as on Windows)")
                return None

        sys.meta_path.insert(0, NoPosix())
        for name in ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGCHLD"):
            if hasattr(signal, name):
                delattr(signal, name)
        import genreslice
        names = [info.name for info in pkgutil.walk_packages(genreslice.__path__, "genreslice.")]
        for package in %r:
            module = importlib.import_module("genreslice." + package)
            names += [info.name for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
        for name in sorted(set(names)):
            if name != "genreslice.__main__":
                importlib.import_module(name)
        print(len(set(names)))
    """ % (SUBPACKAGES,))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 30


def test_every_error_genreslice_raises_on_purpose_is_one_family():
    """The command line catches GenresliceError once; an error class outside the family would escape it."""
    import importlib
    import inspect
    import pkgutil

    from genreslice.errors import GenresliceError, ParameterError

    classes = set()
    for package in SUBPACKAGES:
        module = importlib.import_module(f"genreslice.{package}")
        for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
            if package == "scripts" and info.name.endswith("__main__"):
                continue
            for _, value in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
                if issubclass(value, Exception) and value.__module__.startswith("genreslice."):
                    classes.add(value)
    assert len(classes) >= 15
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, GenresliceError)] == []
    assert issubclass(ParameterError, ValueError)
    from genreslice.pipeline.errors import ParameterError as PipelineParameterError
    from genreslice.training.errors import ParameterError as TrainingParameterError
    assert PipelineParameterError is TrainingParameterError is ParameterError
