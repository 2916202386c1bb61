"""Eval jobs: many tasks x agents x models x attempts, run, resumed and summarised.

``plan``   what a job runs (tasks, agents, attempts) and the job file schema;
``store``  the job folder: a manifest plus one record per rollout, written atomically;
``run``    launching with bounded concurrency and following rollouts to their end;
``stats``  pass@k, intervals and the result table; ``report`` the HTML report.

Nothing here writes to stdout or stderr: commands hand the results to ``output``.
"""
