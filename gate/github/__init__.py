"""GitHub, for the rest of the gate: the runner's files and commands (`runner`), the API
transport (`transport`), the sticky PR comment (`comments`) and the client that holds
them (`api`), under the one name callers import."""
from __future__ import annotations

import requests  # noqa: F401 (tests patch the session through this module)
import uuid  # noqa: F401

from gate.github.api import *  # noqa: F401,F403
from gate.github.api import DEFAULT_BOT_LOGIN, GitHubClient  # noqa: F401
from gate.github.comments import *  # noqa: F401,F403
from gate.github.comments import COMMENT_LIMIT, TRUNCATION_NOTE, fit_comment  # noqa: F401
from gate.github.runner import *  # noqa: F401,F403
from gate.github.runner import (error_annotations, head_sha, mask_lines, notice,  # noqa: F401
                                pr_number, warning, write_outputs, write_summary)
from gate.github.transport import *  # noqa: F401,F403
from gate.github.transport import (DEFAULT_MAX_WAIT, MAX_ATTEMPTS,  # noqa: F401
                                   SECONDARY_RATE_LIMIT_WAIT, GitHubError)
