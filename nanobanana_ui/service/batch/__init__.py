"""Batch runs: many prompts from a file at the pace of the rate limit, resumable, each request in a manifest."""

from .gemini_jobs import GeminiBatchRun
from .gemini_service import GeminiBatches, GeminiJobView
from .gemini_summary import GeminiBatchSummary
from .items import BatchFileError, BatchItem, parse_batch_text, read_batch_file
from .plan import BatchPlan, plan_batch
from .run import BatchSummary, ItemOutcome, run_batch

__all__ = [
    "BatchFileError", "BatchItem", "BatchPlan", "BatchSummary", "GeminiBatchRun", "GeminiBatchSummary",
    "GeminiBatches", "GeminiJobView", "ItemOutcome", "parse_batch_text", "plan_batch", "read_batch_file", "run_batch",
]
