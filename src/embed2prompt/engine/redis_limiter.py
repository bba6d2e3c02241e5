"""One set of API limits shared by every process on every machine, kept in Redis.

OpenAI counts limits per organisation, not per process: ten workers that each keep
3,500 RPM together send 35,000. :class:`RedisRateLimiter` has the interface and the
guarantees of :class:`OpenAIRateLimiter` (requests in flight, RPM, RPD, TPM, TPD; tokens
reserved before a call and corrected after; smooth pacing; a 429's Retry-After pausing
everyone; the rate lowered after 429s without limit headers), with its state in Redis
and every decision made by a Lua script that Redis runs atomically, so no two processes
can both take the last unit.

State under ``{prefix}:{name}:*`` (``name`` identifies the organisation or key):

- ``tat``: the four GCRA buckets, each as the time it will be full again (as in the
  in-process limiter), in Redis's clock (``TIME``), which every machine shares;
- ``rate``: per-minute rates lowered by the servers' ``x-ratelimit-limit-*`` headers;
- ``adapt``: the share of the per-minute limits in use after 429s without limit headers,
  the share to recover to, its generation, the successes towards the next increase, and
  why it last changed (:mod:`embed2prompt.engine.adaptive`: the same rules as the
  in-process limiter's);
- ``leases``: calls in flight, each with an expiry, so a process that dies mid-call frees
  its slot after ``lease_s`` instead of holding it for ever;
- ``pause``: the time until which a server asked everyone to wait;
- ``minute``: requests, tokens and successes per second of the trailing minute, for
  ``astatus()`` and for the rate the server accepted;
- ``totals``: requests started and tokens reserved, for ``astatus()``.

Within one process, waiting calls queue first come, first served and only the head of
the queue asks Redis; across processes each head retries when its wait is over. A
limiter whose Redis cannot be reached raises :class:`LimiterUnavailableError`: calls
fail rather than run unlimited.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from embed2prompt.engine.adaptive import AdaptivePolicy, RateChange
from embed2prompt.engine.headers import RateLimitHeaders
from embed2prompt.engine.limiter_base import (
    SECONDS_PER_DAY,
    LimiterStatus,
    LimitUsage,
    UsageEstimate,
    check_actual_tokens,
    check_call_tokens,
    limit_config,
)
from embed2prompt.engine.tiers import RateLimitConfig, RateLimitTier
from embed2prompt.errors import LimiterUnavailableError
from embed2prompt.redaction import hide_url_credentials

log = logging.getLogger(__name__)

_POLL_S = 0.02  # how often the head of the queue asks again while every slot is taken
_LEASE_S = 600.0  # a call in flight longer than this is presumed dead (its process died)

_COMMON = """
local function now_s()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function fmt(x) return string.format('%.6f', x) end
-- Times and rates are kept to the microsecond. Rounded to the nearest, a bucket's
-- full-at time could lose up to half a microsecond's worth of tokens at each call, and
-- the limit be overrun by as much: limiting values are rounded the safe way instead
-- (full-at times, pauses and waits up; lowered rates down, but never to zero).
local function fmt_up(x) return string.format('%.6f', math.ceil(x * 1e6) / 1e6) end
local function fmt_rate(x)
  return string.format('%.6f', math.max(1, math.floor(x * 1e6)) / 1e6)
end
-- The share of the per-minute limits in use: below 1 after 429s without limit headers.
local function share() return tonumber(redis.call('HGET', KEYS[7], 'share') or '') or 1 end
-- A per-minute bucket's ceiling: as configured, or as lowered by a server's headers.
local function ceiling(name, r)
  local lowered = tonumber(redis.call('HGET', KEYS[2], name) or '')
  if lowered and lowered < r then return lowered end
  return r
end
-- A bucket's rate and burst: per-minute buckets refill at their ceiling times the share,
-- the burst shrinking below the configured rate to at most a second's worth, as in the
-- in-process limiter.
local function limits(name, r, burst)
  if name ~= 'rpm' and name ~= 'tpm' then return r, burst end
  local effective = ceiling(name, r) * share()
  if effective < r then return effective, math.min(burst, math.max(1, effective)) end
  return r, burst
end
local function full_at(name)
  return tonumber(redis.call('HGET', KEYS[1], name) or '') or -1e18
end
local function available(name, r, burst, now)
  return burst - math.max(0, full_at(name) - now) * r
end
-- Refill at a new rate from now on, keeping what was available (or the debt).
local function retune(name, before, r, burst, now)
  redis.call('HSET', KEYS[1], name, fmt_up(now + (burst - math.min(before, burst)) / r))
end
-- Change the share to ``new_share``, re-basing the per-minute buckets. ARGV[first..]
-- are the bucket arguments (rate, burst for rpm, rpd, tpm, tpd).
local function set_share(new_share, first, now)
  local before = {}
  for i, name in ipairs({'rpm', 'tpm'}) do
    local at = first + 4 * (i - 1)
    local r, burst = limits(name, tonumber(ARGV[at]), tonumber(ARGV[at + 1]))
    before[name] = available(name, r, burst, now)
  end
  redis.call('HSET', KEYS[7], 'share', string.format('%.17g', new_share), 'successes', 0)
  for i, name in ipairs({'rpm', 'tpm'}) do
    local at = first + 4 * (i - 1)
    local r, burst = limits(name, tonumber(ARGV[at]), tonumber(ARGV[at + 1]))
    retune(name, before[name], r, burst, now)
  end
end
local function generation()
  return tonumber(redis.call('HGET', KEYS[7], 'generation') or '') or 0
end
-- The share to return to after a decrease: what the server accepted before it.
local function recover_to()
  return tonumber(redis.call('HGET', KEYS[7], 'recover_to') or '') or 1
end
-- Calls that succeeded in the trailing minute (the 's' fields of the minute hash).
local function successes(now)
  local total = 0
  local fields = redis.call('HGETALL', KEYS[5])
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 1) == 's' and tonumber(string.sub(name, 2)) + 60 > now then
      total = total + tonumber(fields[i + 1])
    end
  end
  return total
end
"""

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now ('' = Redis TIME), tokens, concurrency, lease id, lease seconds,
#       then per bucket (rpm, rpd, tpm, tpd): rate per second, burst
# Returns {1, now, generation, share} when admitted, or {0, seconds to wait} (-1: wait
# for a free slot).
_ACQUIRE = (
    _COMMON
    + """
local now = now_s()
local tokens = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {0, '-1'} end
local wait = (tonumber(redis.call('GET', KEYS[4]) or '') or -1e18) - now
local names = {'rpm', 'rpd', 'tpm', 'tpd'}
local costs = {1, 1, tokens, tokens}
local rates, bursts = {}, {}
for i, name in ipairs(names) do
  local r, burst = limits(name, tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i]))
  rates[i], bursts[i] = r, burst
  local need = math.min(costs[i], burst)
  local deficit = need - available(name, r, burst, now)
  -- A deficit is waited for at least 1 us, never rounded down to no wait at all.
  if deficit > 1e-9 * math.max(1, need) then wait = math.max(wait, deficit / r, 1e-6) end
end
if wait >= 1e-6 then return {0, fmt_up(wait)} end
for i, name in ipairs(names) do
  local start = math.max(full_at(name), now)
  redis.call('HSET', KEYS[1], name, fmt_up(start + costs[i] / rates[i]))
end
redis.call('ZADD', KEYS[3], fmt(now + tonumber(ARGV[5])), ARGV[4])
local second = tostring(math.floor(now))
if redis.call('HEXISTS', KEYS[5], 'r' .. second) == 0 then
  -- A new second: drop the seconds older than a minute (at most once a second, so the
  -- hash holds about 120 fields however long the limiter runs).
  local fields = redis.call('HKEYS', KEYS[5])
  for _, name in ipairs(fields) do
    if tonumber(string.sub(name, 2)) + 60 <= now then redis.call('HDEL', KEYS[5], name) end
  end
end
redis.call('HINCRBYFLOAT', KEYS[5], 'r' .. second, 1)
redis.call('HINCRBYFLOAT', KEYS[5], 't' .. second, tokens)
redis.call('HINCRBYFLOAT', KEYS[6], 'requests', 1)
redis.call('HINCRBYFLOAT', KEYS[6], 'tokens', tokens)
return {1, fmt(now), tostring(generation()), string.format('%.17g', share())}
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, extra tokens (negative: refund), tpm rate, tpd rate
_CORRECT = (
    _COMMON
    + """
local now = now_s()
local extra = tonumber(ARGV[2])
local rates = {tpm = limits('tpm', tonumber(ARGV[3]), 1), tpd = tonumber(ARGV[4])}
for name, r in pairs(rates) do
  local t = full_at(name)
  if extra > 0 then t = math.max(t, now) + extra / r else t = t + extra / r end
  redis.call('HSET', KEYS[1], name, fmt_up(t))
end
redis.call('HINCRBYFLOAT', KEYS[5], 't' .. tostring(math.floor(now)), extra)
redis.call('HINCRBYFLOAT', KEYS[6], 'tokens', extra)
return 1
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, seconds
_PAUSE = (
    _COMMON
    + """
local until_s = now_s() + tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[4]) or '') or -1e18
if until_s > current then
  redis.call('SET', KEYS[4], fmt_up(until_s), 'PX', math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
  redis.call('HINCRBYFLOAT', KEYS[6], 'pauses', 1)
  return 1
end
return 0
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, then for rpm and tpm: configured rate, burst, reported limit per minute
#       ('' if none), reported remaining ('' if none); then the reason to record
# Returns the number of tightenings.
_OBSERVE = (
    _COMMON
    + """
local now = now_s()
local changed = 0
for i, name in ipairs({'rpm', 'tpm'}) do
  local base = 1 + 4 * (i - 1)
  local configured = tonumber(ARGV[base + 1])
  local configured_burst = tonumber(ARGV[base + 2])
  local limit = tonumber(ARGV[base + 3])
  local remaining = tonumber(ARGV[base + 4])
  local r, burst = limits(name, configured, configured_burst)
  if limit and limit > 0 and limit / 60 < ceiling(name, configured) then
    local before = available(name, r, burst, now)  -- negative while in debt: kept
    redis.call('HSET', KEYS[2], name, fmt_rate(limit / 60))
    r, burst = limits(name, configured, configured_burst)
    retune(name, before, r, burst, now)
    redis.call('HSET', KEYS[7], 'reason', ARGV[10])
    changed = changed + 1
  end
  if remaining and remaining < available(name, r, burst, now) then
    redis.call('HSET', KEYS[1], name, fmt_up(now + (burst - math.max(0, remaining)) / r))
    changed = changed + 1
  end
end
if changed > 0 then redis.call('HINCRBYFLOAT', KEYS[6], 'tightenings', changed) end
return changed
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, generation of the call, decrease factor, floor, reason, then per bucket
#       (rpm, rpd, tpm, tpd): rate per second, burst
# Returns 1 if the call was admitted at a rate now known to be too high.
_REJECTED = (
    _COMMON
    + """
local now = now_s()
local current = generation()
if tonumber(ARGV[2]) < current then return 1 end
local floor = tonumber(ARGV[4])
if share() <= floor then return 0 end
-- AdaptivePolicy.decreased: lowered, and the share the server accepted to recover to.
local lowered = math.max(floor, share() * tonumber(ARGV[3]))
local accepted = successes(now) / (ceiling('rpm', tonumber(ARGV[6])) * 60)
set_share(lowered, 6, now)
redis.call('HSET', KEYS[7], 'generation', current + 1, 'reason', ARGV[5],
           'recover_to', string.format('%.17g', math.max(lowered, math.min(1, accepted))))
redis.call('HINCRBY', KEYS[7], 'decreases', 1)
return 1
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, generation of the call, increase step, window seconds, probe window
#       seconds, reason, then per bucket (rpm, rpd, tpm, tpd): rate per second, burst
# Returns 1 if the share was raised.
_SUCCEEDED = (
    _COMMON
    + """
local now = now_s()
local current_share = share()
if current_share >= 1 or tonumber(ARGV[2]) < generation() then return 0 end
local counted = tonumber(redis.call('HINCRBYFLOAT', KEYS[7], 'successes', 1))
-- AdaptivePolicy.successes_per_increase: a window's worth at the effective rate, of
-- window_s while recovering, of probe_window_s beyond; then AdaptivePolicy.increased.
local target = recover_to()
local recovering = current_share < target
local window = recovering and tonumber(ARGV[4]) or tonumber(ARGV[5])
local per_minute = ceiling('rpm', tonumber(ARGV[7])) * 60
if counted < math.max(1, current_share * per_minute * window / 60) then
  return 0
end
local raised = recovering and target or math.min(1, current_share + tonumber(ARGV[3]))
set_share(raised, 7, now)
redis.call('HSET', KEYS[7], 'reason', ARGV[6])
return 1
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, lease id, 1 if the call succeeded (counted for the rate the server accepts)
_RELEASE = (
    _COMMON
    + """
redis.call('ZREM', KEYS[3], ARGV[2])
if ARGV[3] == '1' then
  redis.call('HINCRBYFLOAT', KEYS[5], 's' .. tostring(math.floor(now_s())), 1)
end
return 1
"""
)

# KEYS: tat, rate, leases, pause, minute, totals, adapt
# ARGV: now, then per bucket: rate, burst
# Returns {now, in flight, paused for, rpm, tpm (rates), available x4, minute requests,
#          minute tokens, requests, tokens, pauses, tightenings, share, decreases,
#          reason}
_STATUS = (
    _COMMON
    + """
local now = now_s()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
local out = {fmt(now), tostring(redis.call('ZCARD', KEYS[3]))}
local paused = (tonumber(redis.call('GET', KEYS[4]) or '') or -1e18) - now
table.insert(out, fmt(math.max(0, paused)))
local rates, avail = {}, {}
for i, name in ipairs({'rpm', 'rpd', 'tpm', 'tpd'}) do
  local r, burst = limits(name, tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]))
  rates[name] = r
  table.insert(avail, fmt(available(name, r, burst, now)))
end
table.insert(out, fmt(rates['rpm'])); table.insert(out, fmt(rates['tpm']))
for _, a in ipairs(avail) do table.insert(out, a) end
local minute_r, minute_t = 0, 0
local fields = redis.call('HGETALL', KEYS[5])
for i = 1, #fields, 2 do
  local second = tonumber(string.sub(fields[i], 2))
  if second + 60 <= now then
    redis.call('HDEL', KEYS[5], fields[i])
  elseif string.sub(fields[i], 1, 1) == 'r' then
    minute_r = minute_r + tonumber(fields[i + 1])
  elseif string.sub(fields[i], 1, 1) == 't' then
    minute_t = minute_t + tonumber(fields[i + 1])
  end
end
table.insert(out, fmt(minute_r)); table.insert(out, fmt(minute_t))
for _, field in ipairs({'requests', 'tokens', 'pauses', 'tightenings'}) do
  table.insert(out, redis.call('HGET', KEYS[6], field) or '0')
end
table.insert(out, string.format('%.17g', share()))
table.insert(out, redis.call('HGET', KEYS[7], 'decreases') or '0')
table.insert(out, redis.call('HGET', KEYS[7], 'reason') or ARGV[10])
return out
"""
)


class RedisRateLimiter:
    """Admits calls within limits shared through Redis by every process that uses the
    same ``url`` and ``name``. Use it like :class:`OpenAIRateLimiter`::

        limiter = RedisRateLimiter(RateLimitTier.TIER_2, url="redis://host:6379/0",
                                   name="org-main")
        async with limiter.acquire(tokens=estimate) as permit:
            ...

    ``clock`` replaces Redis's clock (tests); leave it unset when processes run on
    several machines, so that all of them count time the same way.
    """

    def __init__(
        self,
        config: RateLimitConfig | RateLimitTier,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        name: str = "default",
        prefix: str = "embed2prompt:limits",
        clock: Callable[[], float] | None = None,
        lease_s: float = _LEASE_S,
        client: Any = None,
        adaptive: AdaptivePolicy | None = None,
    ) -> None:
        import redis.asyncio

        self.config = limit_config(config, "RedisRateLimiter")
        self.adaptive = adaptive or AdaptivePolicy()
        self.url = url
        self.name = name
        self._clock = clock
        self._lease_s = lease_s
        self._redis = client if client is not None else redis.asyncio.from_url(url)
        base = f"{prefix}:{name}"
        self._keys = [
            f"{base}:{part}"
            for part in ("tat", "rate", "leases", "pause", "minute", "totals", "adapt")
        ]
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("acquire", _ACQUIRE),
                ("correct", _CORRECT),
                ("pause", _PAUSE),
                ("observe", _OBSERVE),
                ("rejected", _REJECTED),
                ("succeeded", _SUCCEEDED),
                ("release", _RELEASE),
                ("status", _STATUS),
            )
        }
        self._turn = asyncio.Lock()  # this process's waiting calls: first come, first served
        self._wait_time = 0.0
        self._usage = UsageEstimate()
        # What this process last learned from Redis, for status(): the last astatus()
        # snapshot and the rate share of the last admission.
        self._snapshot = _empty_status(self.config)
        self._share = 1.0

    # ------------------------------------------------------------------ public API

    def acquire(self, tokens: float = 0) -> _RedisAcquisition:
        check_call_tokens(self.config, tokens)
        return _RedisAcquisition(self, tokens)

    def pause_for(self, seconds: float) -> None:
        """Everyone waits ``seconds`` (a server's Retry-After); sent in the background,
        as the in-process limiter's is synchronous."""
        if math.isfinite(seconds) and seconds > 0:
            self._background(self._run("pause", seconds))

    async def apause_for(self, seconds: float) -> None:
        if math.isfinite(seconds) and seconds > 0:
            await self._run("pause", seconds)

    def observe_headers(self, headers: RateLimitHeaders) -> None:
        if not headers.is_empty:
            self._background(self.aobserve_headers(headers))

    async def aobserve_headers(self, headers: RateLimitHeaders) -> None:
        if headers.is_empty:
            return
        config = self.config
        args: list[Any] = []
        for rate, burst, limit, remaining in (
            (config.requests_per_minute / 60, config.effective_request_burst,
             headers.limit_requests, headers.remaining_requests),
            (config.tokens_per_minute / 60, config.effective_token_burst,
             headers.limit_tokens, headers.remaining_tokens),
        ):  # fmt: skip
            args += [rate, burst, _optional(limit), _optional(remaining)]
        await self._run("observe", *args, RateChange.LIMIT_HEADERS.value)

    async def astatus(self) -> LimiterStatus:
        """Every process's usage, waiting excepted (this process's own), read from Redis."""
        *raw, reason = await self._run("status", *self._bucket_args(), RateChange.CONFIGURED.value)
        values = [float(v) for v in raw]
        (_, in_flight, paused, rpm_rate, tpm_rate, rpm_av, rpd_av, tpm_av, tpd_av,
         minute_requests, minute_tokens, requests, tokens, pauses,
         tightenings, share, decreases) = values  # fmt: skip
        config = self.config
        self._share = share
        self._snapshot = LimiterStatus(
            in_flight=int(in_flight),
            concurrent_limit=config.concurrent_requests,
            waiting=0,
            requests_per_minute=LimitUsage(rpm_rate * 60, minute_requests, rpm_av),
            requests_per_day=LimitUsage(config.requests_per_day, requests, rpd_av),
            tokens_per_minute=LimitUsage(tpm_rate * 60, minute_tokens, tpm_av),
            tokens_per_day=LimitUsage(config.tokens_per_day, tokens, tpd_av),
            requests_started=int(requests),
            tokens_reserved=tokens,
            wait_time_s=self._wait_time,
            paused_for_s=paused,
            server_pauses=int(pauses),
            header_tightenings=int(tightenings),
            rate_share=share,
            rate_reason=reason.decode() if isinstance(reason, bytes) else str(reason),
            rate_decreases=int(decreases),
        )
        return self._snapshot

    def status(self) -> LimiterStatus:
        """What this process knows without asking Redis: the figures of the last
        :meth:`astatus`, the rate share of the last call admitted, and its own waiting."""
        return replace(self._snapshot, wait_time_s=self._wait_time, rate_share=self._share)

    async def reset(self) -> None:
        """Forget all shared state of this limiter (every process's)."""
        await self._call(self._redis.delete(*self._keys))

    async def aclose(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ internals

    def _bucket_args(self) -> list[float]:
        config = self.config
        return [
            config.requests_per_minute / 60, config.effective_request_burst,
            config.requests_per_day / SECONDS_PER_DAY, config.requests_per_day,
            config.tokens_per_minute / 60, config.effective_token_burst,
            config.tokens_per_day / SECONDS_PER_DAY, config.tokens_per_day,
        ]  # fmt: skip

    async def _admit(self, tokens: float) -> tuple[RedisPermit, str]:
        """Wait for room; the call's permit and lease id."""
        lease = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._turn:
                while True:
                    try:
                        admitted = await self._try_admit(tokens, lease)
                    except asyncio.CancelledError:
                        # Redis may have admitted the call before the cancel arrived:
                        # give the slot back rather than hold it until the lease ends.
                        self._background(self._release(lease))
                        raise
                    if isinstance(admitted, RedisPermit):
                        return admitted, lease
                    await asyncio.sleep(_POLL_S if admitted < 0 else admitted)
        finally:
            self._wait_time += loop.time() - started

    async def _try_admit(self, tokens: float, lease: str) -> RedisPermit | float:
        """Admit the call now if it fits: its permit; or the seconds to wait (-1: until a
        slot is free)."""
        reserved = self._usage.reservation(tokens, self.config)
        admitted, value, *adaptation = await self._run(
            "acquire",
            reserved,
            self.config.concurrent_requests,
            lease,
            self._lease_s,
            *self._bucket_args(),
        )
        if int(admitted) != 1:
            return float(value)
        generation, share = int(adaptation[0]), float(adaptation[1])
        self._share = share
        return RedisPermit(self, reserved, generation=generation, adapting=share < 1)

    async def _rejected(self, generation: int) -> bool:
        policy = self.adaptive
        blamed = await self._run(
            "rejected",
            generation,
            policy.decrease_factor,
            policy.floor,
            RateChange.REJECTED.value,
            *self._bucket_args(),
        )
        return int(blamed) == 1

    async def _succeeded(self, generation: int) -> None:
        policy = self.adaptive
        await self._run(
            "succeeded",
            generation,
            policy.increase_step,
            policy.window_s,
            policy.probe_window_s,
            RateChange.PROBING.value,
            *self._bucket_args(),
        )

    async def _release(self, lease: str, *, succeeded: bool = False) -> None:
        await self._run("release", lease, "1" if succeeded else "0")

    async def _correct(self, extra: float) -> None:
        if extra:
            config = self.config
            await self._run(
                "correct",
                extra,
                config.tokens_per_minute / 60,
                config.tokens_per_day / SECONDS_PER_DAY,
            )

    async def _run(self, script: str, *args: Any) -> Any:
        now = "" if self._clock is None else repr(self._clock())
        return await self._call(self._scripts[script](keys=self._keys, args=[now, *args]))

    async def _call(self, awaitable: Any) -> Any:
        import redis.exceptions

        try:
            return await awaitable
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise LimiterUnavailableError(
                f"the shared rate limiter's Redis at {hide_url_credentials(self.url)} cannot be "
                f"reached ({type(error).__name__}); calls stop rather than run unlimited"
            ) from None

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        _BACKGROUND.add(task)
        task.add_done_callback(_finished_in_background)


_BACKGROUND: set[asyncio.Task[Any]] = set()  # keeps fire-and-forget updates alive


def _finished_in_background(task: asyncio.Task[Any]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("a shared rate-limit update failed: %s", task.exception())


class RedisPermit:
    """The right to make one call; the same methods as the in-process limiter's permit."""

    def __init__(
        self, limiter: RedisRateLimiter, reserved_tokens: float, *, generation: int, adapting: bool
    ) -> None:
        self._limiter = limiter
        self.reserved_tokens = reserved_tokens
        self.generation = generation  # the rate it was admitted at
        self._adapting = adapting  # admitted below the limits, so its success counts
        self.ok = False  # succeeded: counted, on release, for the rate the server accepts
        self._pending: list[Any] = []

    def record_usage(self, actual_tokens: float) -> None:
        check_actual_tokens(actual_tokens)
        self._pending.append(self._limiter._correct(actual_tokens - self.reserved_tokens))
        self._limiter._usage.learn(actual_tokens)
        self.reserved_tokens = actual_tokens

    def observe_headers(self, headers: RateLimitHeaders) -> None:
        if not headers.is_empty:
            self._pending.append(self._limiter.aobserve_headers(headers))

    def refund(self) -> None:
        self._pending.append(self._limiter._correct(-self.reserved_tokens))
        self.reserved_tokens = 0

    async def rate_limited(self, headers: RateLimitHeaders) -> bool:
        """As :meth:`Permit.rate_limited <embed2prompt.engine.limiter.Permit.rate_limited>`,
        decided in Redis for every process."""
        if not headers.is_empty:
            return False  # the headers say the limits: observe_headers adopts them
        return await self._limiter._rejected(self.generation)

    def succeeded(self) -> None:
        self.ok = True  # counted when the slot is given back, in the same round trip
        # The rate is raised only while adapting: at the full limits a success changes
        # nothing, and costs no round trip of its own.
        if self._adapting:
            self._pending.append(self._limiter._succeeded(self.generation))


class _RedisAcquisition:
    def __init__(self, limiter: RedisRateLimiter, tokens: float) -> None:
        self._limiter = limiter
        self._tokens = tokens
        self._lease: str | None = None
        self._permit: RedisPermit | None = None

    async def __aenter__(self) -> RedisPermit:
        self._permit, self._lease = await self._limiter._admit(self._tokens)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The corrections the call recorded, then the slot: in that order, so that the
        # next call admitted sees this one's real usage.
        assert self._permit is not None
        assert self._lease is not None
        pending = self._permit._pending
        try:
            while pending:
                await pending.pop(0)
        finally:
            for update in pending:  # not sent, since an earlier one failed
                update.close()
            await asyncio.shield(self._limiter._release(self._lease, succeeded=self._permit.ok))


def _empty_status(config: RateLimitConfig) -> LimiterStatus:
    """The status before this process has read any from Redis: the limits, nothing used."""
    return LimiterStatus(
        in_flight=0,
        concurrent_limit=config.concurrent_requests,
        waiting=0,
        requests_per_minute=LimitUsage(config.requests_per_minute, 0.0, 0.0),
        requests_per_day=LimitUsage(config.requests_per_day, 0.0, 0.0),
        tokens_per_minute=LimitUsage(config.tokens_per_minute, 0.0, 0.0),
        tokens_per_day=LimitUsage(config.tokens_per_day, 0.0, 0.0),
        requests_started=0,
        tokens_reserved=0.0,
        wait_time_s=0.0,
        paused_for_s=0.0,
        server_pauses=0,
        header_tightenings=0,
    )


def _optional(value: float | None) -> str:
    return "" if value is None else repr(float(value))
