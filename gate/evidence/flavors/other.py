"""Any flavor no flavor module claims (pyfunc, pytorch, a forgotten one): named and
shown, never loaded; the gate falls back to the predictions the run logged."""
from __future__ import annotations

from typing import Any

from gate.evidence.flavors.base import text, word


def describe(blocks: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The flavor and serialization format to show for an unclaimed model."""
    named = [name for name in blocks if name != "python_function"]
    flavor = named[0] if named else "python_function"
    conf = blocks[flavor]
    fmt = text(conf.get("serialization_format") or conf.get("pickle_module_name"), "")
    if not fmt:
        fmt = "cloudpickle" if "python_model" in blocks.get("python_function", {}) or \
            "cloudpickle_version" in conf else "unknown"
    return word(flavor, 60), word(fmt, 40)
