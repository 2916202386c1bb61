"""Shell completion that knows values: rollout, pool and task ids, agents, models, formats.

A Tab press runs ``envpools`` with ``_ENVPOOLS_COMPLETE=<shell>`` and the words of the line;
``__main__`` hands it to :func:`answer` before anything heavy is imported. The command
tree comes from a spec cached on disk (rebuilt from the Typer app only when the package
changes), and backend values from a short-lived cache refreshed with a short timeout, so
a Tab press costs about one interpreter start and never hangs on a slow backend.

Modules: ``scripts`` (what the shells load), ``engine`` (one Tab press), ``spec`` (the
command tree as data), ``values`` (backend and local values, cached).
"""
