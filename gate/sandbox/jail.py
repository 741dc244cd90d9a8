"""The bwrap command line: what the sandboxed process can see (the Python environment
read-only, the model folder read-only at /model, a private /tmp) and what it cannot
(network, other users' and the caller's files, the checkout, the environment)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

MODEL = "/model"                # where the model folder appears inside
CHILD = "/gate/child.py"        # the child program, one file bound read-only
CHILD_SOURCE = Path(__file__).with_name("child.py")
NOBODY = "65534"

# what Python and its compiled libraries need of the host, read-only; nothing else of /
# (no /root, /home, /work, /var, /run, /etc beyond the linker's cache)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
          "/etc/ld.so.cache", "/etc/alternatives")

# The whole environment of the sandboxed process: no MLFLOW_TRACKING_*, AWS_*, GITHUB_*,
# tokens or proxies of the caller. Unpickling is what the sandbox is for, so MLflow's
# switch for it is set explicitly (its default may change); telemetry would only time out.
ENVIRONMENT = (("PATH", "/usr/bin:/bin"), ("HOME", "/tmp"), ("TMPDIR", "/tmp"),
               ("LANG", "C.UTF-8"), ("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true"),
               ("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true"))


@dataclass(frozen=True)
class Bwrap:
    path: str
    sizes: bool = False             # knows --size (0.7): the private /tmp is bounded
    disable_userns: bool = False    # knows --disable-userns (0.8): no nested namespaces


def python() -> tuple[str, tuple[str, ...]]:
    """The interpreter to run inside and the folders it needs: this process's own
    environment (a venv and the installation it was made from, and site-packages folders
    elsewhere that a .pth file adds), read-only; never the working directory."""
    prefix = os.path.realpath(sys.prefix)
    base = os.path.realpath(sys.base_prefix)
    # a venv's bin/python is found by its own path (pyvenv.cfg sits beside bin/)
    interpreter = os.path.join(prefix, "bin", "python3")
    if not os.path.exists(interpreter):
        interpreter = os.path.realpath(sys.executable)
    return interpreter, tuple(dict.fromkeys((base, prefix, *_other_site_packages(
        (base, prefix)))))


def _other_site_packages(covered: tuple[str, ...]) -> list[str]:
    """sys.path's site-packages folders outside `covered` (a venv that sees another's
    packages through a .pth): the child's own site module adds them again inside."""
    here = os.path.realpath(os.getcwd())
    found = []
    for entry in sys.path:
        # as sys.path names it (through any symlink): that is the path looked up inside
        path = os.path.abspath(entry) if entry else ""
        if not path or not os.path.isdir(path) or \
                os.path.basename(path) not in ("site-packages", "dist-packages"):
            continue
        real = os.path.realpath(path)
        if any(real == c or real.startswith(c + os.sep) for c in covered) or \
                real == here or real.startswith(here + os.sep):
            continue
        found.append(path)
    return found


def options(bwrap: Bwrap, tmp_bytes: int) -> list[str]:
    """Everything but the binds of a particular model: shared by the probe and predict,
    so a probe that succeeds means this very jail can be made."""
    args = [bwrap.path, "--unshare-all", "--unshare-user", "--uid", NOBODY, "--gid", NOBODY,
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    if bwrap.disable_userns:
        args.append("--disable-userns")
    for name, value in ENVIRONMENT:
        args += ["--setenv", name, value]
    args += system_binds()
    args += ["--proc", "/proc", "--dev", "/dev"]
    if bwrap.sizes:
        args += ["--size", str(tmp_bytes)]
    args += ["--tmpfs", "/tmp", "--chdir", "/tmp"]
    return args


def system_binds() -> list[str]:
    args: list[str] = []
    for path in SYSTEM:
        if os.path.islink(path) and "/" not in path.strip("/"):
            # merged /usr: /lib -> usr/lib stays a link, into the /usr bound above
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def command(bwrap: Bwrap, model_dir: Path, tmp_bytes: int, input_bytes: int) -> list[str]:
    interpreter, folders = python()
    args = options(bwrap, tmp_bytes)
    for folder in folders:
        args += ["--ro-bind", folder, folder]
    args += ["--ro-bind", str(model_dir), MODEL, "--ro-bind", str(CHILD_SOURCE), CHILD]
    # -I: no PYTHON* variables, no user site, not the script's folder on sys.path;
    # -B: no bytecode written (the binds are read-only anyway)
    return args + [interpreter, "-I", "-B", CHILD, MODEL, str(input_bytes)]
