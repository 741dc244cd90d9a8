"""Sealed holdouts on the tracking server: runs of an experiment of their own.

The experiment's permissions seal them (deploy/bootstrap.py: READ for the gate's users,
no grant for a pull request's); the rows are the run's artifact, uploaded through
`artifacts`. Finding and starting runs is all this module does.
"""
from __future__ import annotations

from typing import Any, Mapping

from gate import contract
from gate.errors import InputError, echo
from gate.mlflowstore.session import Session

# the permission a refused write needed, for the error message
_EDIT = ("EDIT on the holdout experiment (or, when it does not exist yet, the right to "
         "create experiments)")
_SEARCH_LIMIT = 100


class Holdouts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, experiment: str, sha256: str) -> list[str]:
        if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            raise InputError(f"not a sha256 digest: {echo(sha256)}")     # never in a filter
        found = self._experiment(experiment)
        if found is None:
            return []
        client = self.session.client
        with self.session.errors(f"holdout runs of experiment {experiment!r}"):
            runs = client.search_runs(
                [found.experiment_id],
                filter_string=f"tags.`{contract.TAG_HOLDOUT_SHA}` = '{sha256}'",
                order_by=["attributes.start_time DESC"], max_results=_SEARCH_LIMIT)
        return [run.info.run_id for run in runs]

    def start(self, experiment: str, name: str, tags: Mapping[str, str]) -> str:
        client = self.session.client
        found = self._experiment(experiment)
        with self.session.errors(f"creating a run in experiment {experiment!r}", _EDIT):
            if found is None:
                experiment_id = client.create_experiment(experiment)
            else:
                experiment_id = found.experiment_id
            run = client.create_run(experiment_id, tags=dict(tags), run_name=name)
        return str(run.info.run_id)

    def finish(self, run_id: str) -> None:
        with self.session.errors(f"finishing run {run_id}", _EDIT):
            self.session.client.set_terminated(run_id)

    def _experiment(self, name: str) -> Any:
        client = self.session.client
        found = self.session.or_none(f"experiment {name!r}",
                                     lambda: client.get_experiment_by_name(name),
                                     not_there=("RESOURCE_DOES_NOT_EXIST",))
        if found is not None and getattr(found, "lifecycle_stage", "") == "deleted":
            raise InputError(f"experiment {name!r} is deleted: restore it or pass "
                             "--experiment with another name")
        return found
