"""The Lua scripts that make every shared-state transition atomic inside Redis.

Each script runs as one command (EVALSHA after the first call, via redis-py's ``Script``),
so a read-modify-write can never interleave with another process's, which is the race
pybreaker's ``CircuitRedisStorage`` has (it reads the state and the counter, decides in
Python, then writes). Times come from the Redis server clock (``TIME``), the one clock
every process agrees on, unless the caller passes one (tests do, so they never sleep).
Lua numbers are doubles; every value here stays an integer below 2**53.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["BREAKER_ACQUIRE", "BREAKER_RECORD", "GCRA", "LuaScript"]


class LuaScript:
    """A script sent by its SHA1 (EVALSHA); loaded once when the server does not know it.

    The sync path takes the backend's ``execute`` (one command, one round trip); the
    asyncio path takes a redis-py asyncio client.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, execute: Callable[..., Any], key: str, *args: Any) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return execute("EVALSHA", self.sha, 1, key, *args)
        except NoScriptError:  # a restarted or flushed server: load it, once
            execute("SCRIPT", "LOAD", self.source)
            return execute("EVALSHA", self.sha, 1, key, *args)

    def run_packed(
        self,
        execute_packed: Callable[[list[bytes]], Any],
        packed: list[bytes],
        load: Callable[..., Any],
    ) -> Any:
        """``__call__`` for an EVALSHA of this script packed beforehand."""
        from redis.exceptions import NoScriptError

        try:
            return execute_packed(packed)
        except NoScriptError:
            load("SCRIPT", "LOAD", self.source)
            return execute_packed(packed)

    async def run_async(self, client: redis.asyncio.Redis, key: str, *args: Any) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, 1, key, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, 1, key, *args)


_NOW_MS = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Breaker hash fields: s (0 closed, 1 open, 2 half-open), f (consecutive failures),
# o (opened at, ms), h (half-open since, ms), t (trial calls admitted), k (trial
# successes), g (generation: bumped on every transition, so an outcome reported for a call
# admitted under an older state cannot move the newer one), x (1 when forced open).
# A closed breaker with no failures needs no key at all, so healthy breakers cost nothing.
#
# KEYS[1] the breaker's hash
# ARGV: now_ms or "", open_timeout_ms, half_open_calls, ttl_ms
# Returns {allowed (0/1), state, failures, wait_ms, generation}
BREAKER_ACQUIRE = LuaScript(
    _NOW_MS
    + """
local key = KEYS[1]
local open_ms = tonumber(ARGV[2])
local trials_max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local v = redis.call('HMGET', key, 's', 'f', 'o', 'h', 't', 'g', 'x')
local state = tonumber(v[1]) or 0
local failures = tonumber(v[2]) or 0
local gen = tonumber(v[6]) or 0
if v[7] == '1' then return {0, 1, failures, open_ms, gen} end
if state == 0 then
  if v[1] then redis.call('PEXPIRE', key, ttl) end
  return {1, 0, failures, 0, gen}
end
if state == 1 then
  local wait = (tonumber(v[3]) or 0) + open_ms - now
  if wait > 0 then return {0, 1, failures, wait, gen} end
  gen = gen + 1
  redis.call('HSET', key, 's', 2, 'h', now, 't', 1, 'k', 0, 'g', gen)
  redis.call('PEXPIRE', key, ttl)
  return {1, 2, failures, 0, gen}
end
local trials = tonumber(v[5]) or 0
local since = tonumber(v[4]) or 0
if trials >= trials_max then
  -- Trial slots taken by a process that died never come back: after another open
  -- timeout in half-open, start a fresh set of trials.
  local wait = since + open_ms - now
  if wait > 0 then return {0, 2, failures, wait, gen} end
  gen = gen + 1
  redis.call('HSET', key, 'h', now, 't', 1, 'k', 0, 'g', gen)
else
  redis.call('HINCRBY', key, 't', 1)
end
redis.call('PEXPIRE', key, ttl)
return {1, 2, failures, 0, gen}
"""
)

# KEYS[1] the breaker's hash
# ARGV: now_ms or "", outcome ('1' success, '0' failure, 'r' released: the call ended
#       without a countable outcome, so a half-open trial slot is given back),
#       generation seen at acquire, threshold,
#       half_open_calls, ttl_ms
# Returns {state, failures, generation, opened_at_ms}
BREAKER_RECORD = LuaScript(
    _NOW_MS
    + """
local key = KEYS[1]
local success = ARGV[2] == '1'
local seen = tonumber(ARGV[3])
local threshold = tonumber(ARGV[4])
local trials_max = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local v = redis.call('HMGET', key, 's', 'f', 'g', 'k', 'o', 't')
local state = tonumber(v[1]) or 0
local failures = tonumber(v[2]) or 0
local gen = tonumber(v[3]) or 0
local opened = tonumber(v[5]) or 0
if seen ~= gen then return {state, failures, gen, opened} end
if ARGV[2] == 'r' then
  if state == 2 and (tonumber(v[6]) or 0) > 0 then redis.call('HINCRBY', key, 't', -1) end
  return {state, failures, gen, opened}
end
if success then
  if state == 0 then
    if failures == 0 then return {0, 0, gen, opened} end
    failures = 0
    redis.call('HSET', key, 'f', 0)
  elseif state == 2 then
    local ok = (tonumber(v[4]) or 0) + 1
    if ok >= trials_max then
      state = 0
      failures = 0
      gen = gen + 1
      redis.call('HSET', key, 's', 0, 'f', 0, 'k', 0, 't', 0, 'g', gen)
    else
      redis.call('HSET', key, 'k', ok)
    end
  end
else
  if state == 0 then
    failures = failures + 1
    if failures >= threshold then
      state = 1
      opened = now
      gen = gen + 1
      redis.call('HSET', key, 's', 1, 'f', failures, 'o', now, 'g', gen)
    else
      redis.call('HSET', key, 'f', failures)
    end
  elseif state == 2 then
    state = 1
    opened = now
    gen = gen + 1
    redis.call('HSET', key, 's', 1, 'o', now, 'g', gen)
  end
end
redis.call('PEXPIRE', key, ttl)
return {state, failures, gen, opened}
"""
)

# Generic cell rate algorithm: one key per limited client holding its theoretical arrival
# time (TAT, in microseconds). A call is allowed when, after adding its emission interval,
# the TAT is at most one period ahead of now (a burst of ``count`` calls, as in
# ``InMemoryRateLimiter``). The key expires when the TAT is reached, so idle clients cost
# nothing.
#
# KEYS[1] the limiter key
# ARGV: now_us or "", interval_us, period_us, cost
# Returns {allowed (0/1), retry_after_us}
GCRA = LuaScript(
    """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat + interval * tonumber(ARGV[4]) - now
if ahead > period then return {0, ahead - period} end
redis.call('SET', KEYS[1], string.format('%.0f', now + ahead), 'PX', math.ceil(ahead / 1000))
return {1, 0}
"""
)
