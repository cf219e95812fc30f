"""The one reverse-ETL engine every destination uses: diff, batch, send, record state, rejections and runs."""

from marketing_pipelines.sync.destination import Api, Audience, Destination, Outbox, Transport
from marketing_pipelines.sync.engine import SyncReport, run_sync

__all__ = ["Api", "Audience", "Destination", "Outbox", "SyncReport", "Transport", "run_sync"]
