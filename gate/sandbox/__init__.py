"""Models loaded and asked to predict in a sandbox: a child process under bubblewrap
that sees the eval features, the model's files and the Python environment (read-only),
and nothing else: no network, no environment, no labels, no checkout, bounded CPU,
memory, output and time. Pickled models are unpickled there and only there.

The parent side imports no MLflow; child.py, the program run inside, does.
"""
from gate.sandbox.limits import Limits
from gate.sandbox.model import Pending, Prediction, predict, start, warm
from gate.sandbox.probe import Probe, SandboxUnavailable, probe

__all__ = ["Limits", "Pending", "Prediction", "Probe", "SandboxUnavailable", "predict", "probe",
           "start", "warm"]
