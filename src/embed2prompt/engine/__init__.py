"""The rate-limited parallel engine: limits, retries, and running many calls at once.

tiers      RateLimitConfig, RateLimitTier: the numbers to stay within
limiter    OpenAIRateLimiter: admits a call only when it fits every limit
redis_limiter  RedisRateLimiter: the same limits shared by every process, in Redis
limiter_base   LimiterStatus, RateLimiter: what both limiters share
adaptive   AdaptivePolicy: learning a lower server limit from 429s without headers
headers    RateLimitHeaders: what the server says remains
retry      RetryPolicy and the pure functions behind it
executor   CallExecutor: one call under the limiter and the retry policy
processor  AsyncEmbeddingProcessor: many calls in parallel, failures isolated
metrics    RunMetrics: what a run did
"""

from embed2prompt.engine.adaptive import AdaptivePolicy
from embed2prompt.engine.executor import CallExecutor, ReportsUsage
from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.limiter import LimiterStatus, LimitUsage, OpenAIRateLimiter, Permit
from embed2prompt.engine.metrics import CallStats, RunMetrics
from embed2prompt.engine.processor import (
    AsyncEmbeddingProcessor,
    ItemError,
    ItemResult,
    ResultStream,
    RunReport,
)
from embed2prompt.engine.retry import Failure, RetryPolicy
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier

__all__ = [
    "AdaptivePolicy",
    "AsyncEmbeddingProcessor",
    "CallExecutor",
    "CallStats",
    "Failure",
    "ItemError",
    "ItemResult",
    "LimitUsage",
    "LimiterStatus",
    "OpenAIRateLimiter",
    "Permit",
    "RateLimitConfig",
    "RateLimitHeaders",
    "RateLimitTier",
    "ReportsUsage",
    "ResultStream",
    "RetryPolicy",
    "RunMetrics",
    "RunReport",
]
