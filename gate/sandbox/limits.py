"""What a sandboxed model may use: CPU time, address space, file sizes and descriptors
(set by the kernel in the child), output and wall time (enforced by the parent)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 120          # RLIMIT_CPU: SIGXCPU, then SIGKILL 5 s later
    memory_bytes: int = 4096 * MB   # RLIMIT_AS: MemoryError / bad_alloc past it
    wall_seconds: float = 180.0     # the parent kills the sandbox's process group
    output_bytes: int = 64 * MB     # what the parent reads of the child's answer
    input_bytes: int = 256 * MB     # the eval features, as Parquet, on the child's stdin
    file_bytes: int = 64 * MB       # RLIMIT_FSIZE: any one file the model writes
    tmp_bytes: int = 256 * MB       # the private /tmp (tmpfs) as a whole
    open_files: int = 256           # RLIMIT_NOFILE
    stderr_bytes: int = 64 * 1024   # the end of the child's stderr kept for errors

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"sandbox limit {name} must be positive, not {value!r}")

    def describe_memory(self) -> str:
        return f"{self.memory_bytes / (1024 * MB):g} GB"


def preexec(limits: Limits) -> Callable[[], None]:
    """The function the forked child runs before it execs bwrap: the limits hold for
    bwrap and everything it starts (rlimits are inherited across exec and namespaces)."""

    def apply() -> None:
        import resource

        cpu = limits.cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        # no core file of a crashing model, anywhere (child.py also clears its dumpable
        # flag, which stops a core piped to a handler such as apport, which this does not)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply
