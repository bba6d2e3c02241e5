"""The OpenAI Batch API mode: a run's API calls as batches, at half the price.

stages   the pipeline's evaluation of a row, cut into stages of independent requests
state    the state file beside the output: rows, requests, files and batches (SQLite)
remote   the Files and Batches calls through the official SDK, each made at most once
files    each input file's steps: written, uploaded, submitted, joined, then deleted
run      BatchApiRun: invert locally, then each stage's files uploaded, batched, joined
cancel   cancel_run: a run's batches cancelled at the server, what they did kept
pricing  OpenAI's list prices, synchronous and batch, and the table printed up front
status   where a run stands (``invert ... --batch-api --status``)
"""

from embed2prompt.batch_api.cancel import Cancelled, cancel_run
from embed2prompt.batch_api.run import BatchApiRun
from embed2prompt.batch_api.status import status_report

__all__ = ["BatchApiRun", "Cancelled", "cancel_run", "status_report"]
