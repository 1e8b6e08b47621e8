"""Owners told where they work: Slack threads and Teams cards per incident (no Dagster imports).

    from orchestrator.notify import Notifier
    report = Notifier(store, owners_of=owners_from_project(graph, resolution)).tick()

``threads`` (what to tell, per incident, scrubbed), ``config`` (routes: owner/policy -> Slack
channel / Teams webhook), ``transports`` (Slack Web API ``chat.postMessage``, Teams incoming
webhook, over httpx), ``render`` (Block Kit / Adaptive Card with the signed approval links),
``dispatch`` (deduplication in the project store, rate limits, Retry-After). The Dagster sensor
is ``sensors/notify.py``; ``orchestrator notify`` runs one tick from a terminal.
"""

from orchestrator.notify.config import Destination, NotifySettings, Routing, parse_routes
from orchestrator.notify.dispatch import Notifier, TickReport
from orchestrator.notify.threads import IncidentThread, collect_threads, owners_from_project

__all__ = ["Destination", "IncidentThread", "Notifier", "NotifySettings", "Routing", "TickReport",
           "collect_threads", "owners_from_project", "parse_routes"]
