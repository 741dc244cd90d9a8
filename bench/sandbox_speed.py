"""What the model sandbox (gate/sandbox) costs: its start (bubblewrap, Python, the
imports the child needs) with a trivial model, and one scikit-learn model predicting
1,000 rows in the sandbox against the same in-process (unisolated).

    .venv/bin/python -m bench.sandbox_speed [--repeats 5]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import at_least, log, machine, median_time, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=at_least(1), default=5)
    args = parser.parse_args(argv)

    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import Ridge

    from gate.sandbox import jail, predict, probe

    found = probe()
    if not found.ok or found.bwrap is None:
        print(f"no sandbox here: {found.why}", file=sys.stderr)
        return 1
    interpreter, folders = jail.python()
    inside = jail.options(found.bwrap, 64 * 1024 * 1024)
    for folder in folders:
        inside += ["--ro-bind", folder, folder]

    def run(*command: str) -> None:
        subprocess.run(list(command), check=True, stdout=subprocess.DEVNULL)

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(1000, 10)), columns=[f"f{i}" for i in range(10)])
    y = x.sum(axis=1) + rng.normal(size=1000)
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        trivial, ridge = Path(tmp) / "trivial", Path(tmp) / "ridge"
        mlflow.sklearn.save_model(Ridge().fit(x.iloc[:, :1], y), str(trivial),
                                  serialization_format="skops")
        mlflow.sklearn.save_model(Ridge().fit(x, y), str(ridge), serialization_format="skops")
        cases = [
            ("python -c pass (no sandbox)", lambda: run(sys.executable, "-c", "pass")),
            ("python -c 'import mlflow' (no sandbox)",
             lambda: run(sys.executable, "-c", "import mlflow")),
            ("bwrap jail, /bin/true", lambda: run(*inside, "/bin/true")),
            ("bwrap jail, python -I -c pass",
             lambda: run(*inside, interpreter, "-I", "-c", "pass")),
            ("bwrap jail, python -I -c 'import mlflow.pyfunc'",
             lambda: run(*inside, interpreter, "-I", "-c", "import mlflow.pyfunc")),
            ("sandbox predict: trivial skops model, 1 row (the start)",
             lambda: predict(trivial, x.iloc[:1, :1], label="trivial")),
            ("sandbox predict: Ridge (skops), 1,000 rows",
             lambda: predict(ridge, x, label="ridge")),
            ("in-process: mlflow.pyfunc.load_model + predict, 1,000 rows",
             lambda: mlflow.pyfunc.load_model(str(ridge)).predict(x)),
        ]
        for name, call in cases:
            log(name)
            call()                                  # warm the page cache and bytecode
            median, _ = median_time(call, args.repeats)
            rows.append([name, round(median, 3)])
    bare = rows[1][1]
    for row in rows:
        row.append(f"{row[1] / bare:.2f}")
    print(f"### Sandbox cost\n\n{machine()}; {found.why}, median of {args.repeats}; "
          "the last column against a bare `import mlflow` timed in the same run\n")
    print(table(["what", "seconds", "x import mlflow"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
