"""The one reverse-ETL engine every destination uses: diff, batch, send, record state, rejections and runs."""

from marketing_pipelines.sync.engine import Audience, BatchOutcome, Destination, SyncReport, run_sync

__all__ = ["Audience", "BatchOutcome", "Destination", "SyncReport", "run_sync"]
