"""Loaded once by the LocalExecutor's forkserver (see scripts/env.sh), so task processes don't have to.

Every task process is forked from a LocalExecutor worker, which is forked from the forkserver. What
is imported here is inherited by them all: the task runner, Airflow's plugins and listeners
(common-ai's HITL review plugin alone imports the API app: about 1 s a task otherwise), the agent
runtime (common-ai, pydantic-ai and its price table) and Baton's compiler and event store, with the
fingerprint of Baton's source that keys the validation cache (hashed once here, not in every task's
parse: it is the fingerprint of the code these processes run). Nothing here leaves a connection, a
file or a thread open, so forking after it is safe.
"""

from airflow.sdk.execution_time import task_runner  # noqa: F401
from airflow.sdk.listener import get_listener_manager
from genai_prices import data_snapshot

import baton.agents.llm
import baton.agents.skills
import baton.compile.loader
import baton.coordination.step
import baton.plugin.listener  # noqa: F401
from baton.compile.cache import code_fingerprint

get_listener_manager()  # cached: loads the plugins and registers their listeners
data_snapshot.get_snapshot()  # pydantic-ai's model price table, parsed once
code_fingerprint()
