"""The use cases: submit, accept a callback, ingest, reconcile. They speak only to ports."""

from handlers.usecases.callbacks import accept_callback
from handlers.usecases.ingest import Busy, ingest
from handlers.usecases.outcomes import conclude, publish_outcome
from handlers.usecases.reconcile import reconcile
from handlers.usecases.submit import record_rejection, send_to_provider, submit

__all__ = ["Busy", "accept_callback", "conclude", "ingest", "publish_outcome", "reconcile",
           "record_rejection", "send_to_provider", "submit"]
