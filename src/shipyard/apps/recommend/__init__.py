"""``shipyard app recommend``: a small shop front over a trained recommender (MovieLens by default).

Pick a user (or browse anonymously), see recommendations with their reason ("because you liked X"), click items
(an event: the list changes at once) and rate them (1-5 stars). Events go to the run's ``events.jsonl`` like
every served event, where erasure reaches them. See docs/recommend.md.

- ``shipyard app recommend train`` trains the MovieLens job (examples/movielens_bpr.yaml's settings);
- ``shipyard app recommend serve RUN`` serves the shop front at ``/ui/apps/recommend/`` with its API;
- ``shipyard serve --apps recommend`` mounts the API under ``/v1/apps/recommend`` (settings: ``run``).
"""

from __future__ import annotations

from shipyard.apps._application import Application
from shipyard.apps.recommend.cli import recommend_cli
from shipyard.apps.recommend.web import api_routers, page_routers

APP = Application(
    name="recommend",
    summary="Shop front over a trained recommender: recommendations with reasons, clicks and ratings.",
    cli=recommend_cli,
    routers=api_routers,
    pages=page_routers,
)
