"""GitHub, for the rest of the gate: the runner's files and commands (`runner`) and the
REST client (`api`), under the one name callers import."""
from __future__ import annotations

import requests  # noqa: F401 (tests patch the session through this module)
import uuid  # noqa: F401

from gate.github.api import *  # noqa: F401,F403
from gate.github.api import (COMMENT_LIMIT, DEFAULT_MAX_WAIT,  # noqa: F401
                             SECONDARY_RATE_LIMIT_WAIT, TRUNCATION_NOTE, GitHubClient,
                             GitHubError, fit_comment)
from gate.github.runner import *  # noqa: F401,F403
from gate.github.runner import (error_annotations, head_sha, mask_lines, notice,  # noqa: F401
                                pr_number, warning, write_outputs, write_summary)
