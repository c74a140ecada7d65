"""The local stack's Airflow part, kept alive by a small supervisor of ours.

``make run`` used to start ``airflow standalone``, which never restarts a component that dies: a
killed triggerer silently took the Kafka watchers (and so the Kafka-started stop-loss) with it.
The supervisor runs ``airflow scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` as
child processes, restarts one that exits (with backoff, leaving it DEAD when it keeps dying), and
writes what each component does to a state file that ``make status`` reads, together with the
scheduler's, triggerer's and dag-processor's job heartbeats from Airflow's metadata database.
Everything lives in ``$AIRFLOW_HOME/stack/``. Nothing here imports Airflow.
"""
