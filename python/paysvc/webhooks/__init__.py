"""Webhooks (brief, section 7): tenants' endpoints, and the push delivery of their events.

- ``model``: the endpoint and delivery objects, request bodies, valid event types;
- ``store``: the endpoint routes' SQL (create, update, delete, rotate, deliveries, manual retry);
- ``signing``: secrets and the Standard Webhooks signature;
- ``ssrf``: which URLs and addresses may be called;
- ``deliverer``: leases due deliveries, makes the attempts, records them (every API process, or
  ``paysvc webhooks run``).

Deliveries are created by the events sequencer (ledger/events.py), in the transaction that numbers
the events: see docs/design.md, "Webhooks: delivery guarantees".
"""
