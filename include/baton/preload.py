# ruff: noqa: F401
# (every import here is for its side effect: the module is in sys.modules before the fork)
"""Loaded once by the LocalExecutor's forkserver (see scripts/env.sh), so task processes don't have to.

Every task process is forked from a LocalExecutor worker, which is forked from the forkserver. What
is imported here is inherited by them all: the task runner, Airflow's plugins and listeners
(common-ai's HITL review plugin alone imports the API app: about 1 s a task otherwise), the agent
runtime (common-ai, pydantic-ai and its price table) and Baton's compiler and event store, with the
fingerprint of Baton's source that keys the validation cache (hashed once here, not in every task's
parse: it is the fingerprint of the code these processes run). Nothing here leaves a connection, a
file or a thread open, so forking after it is safe.

Besides, what tasks imported on their first use, seen with py-spy on the tests' shared Airflow
(139 task processes, 2026-11-26): 66 of their 99 s of CPU went to imports, 31 s of it scipy.stats (for a
version's rollout decision: 1.8 s in each of 17 tasks), 12 s the OpenAI client (a model behind an
OpenAI-compatible API) and 7 s Airflow's DAG bag (each task's parse of its DAG file). Each is imported
here once per Airflow instead. So are the extensions (``BATON_EXTENSIONS``, entry points; the team's
code, as Airflow's plugins are): every Baton task reads the roster as it parses its DAG, and the
roster's skills are theirs. py-spy on bench/latency.py's Baton chain (2026-11-27): ~45 ms of each task
went to importing the demo's skills and ~10 ms to the entry points' scan, of ~160 ms. Each import is
bounded here (``extensions.preload``); one that fails or hangs is left to each task, as before, and a
task that reads the roster then meets it as it did.
"""

# In ruff's order; a comment says what a task imported the module for on its first use (see above).
import airflow.dag_processing.dagbag  # each task's parse of its DAG file
import airflow.providers.common.messaging.triggers.msg_queue  # a Redis asset watcher's DAG
import airflow.providers.slack.notifications.slack_webhook  # an alert to Slack
import anyio._backends._asyncio  # the first event loop a task runs
import openai.resources.chat.chat  # what the OpenAI client loads on its first chat call
import psycopg  # a PostgreSQL event store or business database
import pydantic_ai.models.openai  # a model behind an OpenAI-compatible API
import pydantic_ai.providers.openai
from airflow.sdk.execution_time import task_runner
from airflow.sdk.listener import get_listener_manager
from genai_prices import data_snapshot

import baton.agents.llm
import baton.agents.skills
import baton.compile.loader
import baton.context
import baton.coordination.rollout
import baton.coordination.routed
import baton.coordination.saga
import baton.coordination.scope
import baton.coordination.step
import baton.ops.monitor.loop
import baton.ops.monitor.paging
import baton.optimize.experiments  # scipy.stats: a version's rollout decision, a variant's
import baton.plugin.listener
import baton.skills  # Baton's own skills
import baton.spec.sensor_query  # sqlglot, for the SQL of a threshold sensor
from baton import extensions
from baton.agents.warm import warm_model_path
from baton.compile.cache import code_fingerprint

get_listener_manager()  # cached: loads the plugins and registers their listeners
data_snapshot.get_snapshot()  # pydantic-ai's model price table, parsed once
code_fingerprint()
extensions.preload()  # the team's skills, each import bounded; see the docstring
warm_model_path()  # one structured-output call answered in process: a task's first model call is its next
