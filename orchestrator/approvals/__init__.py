"""One-click approvals: signed, expiring, single-use links (``tokens``) and the ASGI service that
honours them (``app``, ``orchestrator serve-approvals``)."""
