"""The live web viewer: jobs, rollouts, their events, trajectories, diffs and LLM exchanges.

``create_view_app`` builds it (mounted at ``/view``), served by the local backend for its
own API, or by ``envpools view`` in front of any backend. The browser never holds an API
key: it signs in once (a one-time code, or a key posted by hand on the backend) and then
presents an HttpOnly cookie; the viewer calls the API with the key on its behalf, GET
only, for the resources it shows.
"""

from envpools_cli.server.view.app import ViewConfig, create_view_app, standalone_app
from envpools_cli.server.view.jobs import JobsSource
from envpools_cli.server.view.sessions import Sessions

__all__ = ["JobsSource", "Sessions", "ViewConfig", "create_view_app", "standalone_app"]
