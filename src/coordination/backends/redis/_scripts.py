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
    import redis.asyncio.cluster

__all__ = [
    "BREAKER_ACQUIRE",
    "BREAKER_RECORD",
    "GCRA",
    "GCRA_QUOTA",
    "LIMITED_ACQUIRE",
    "READ_HASH",
    "LuaScript",
]


class LuaScript:
    """A script sent by its SHA1 (EVALSHA); loaded once when the server does not know it.

    The sync path takes the backend's ``execute`` (one command, one round trip); the
    asyncio path takes a redis-py asyncio client.
    """

    __slots__ = ("keys", "sha", "source")

    def __init__(self, source: str, *, keys: int = 1) -> None:
        self.source = source
        self.keys = keys  # the first ``keys`` arguments of a call are its KEYS
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, execute: Callable[..., Any], *keys_and_args: Any) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return execute("EVALSHA", self.sha, self.keys, *keys_and_args)
        except NoScriptError:  # a restarted or flushed server: load it, once
            execute("SCRIPT", "LOAD", self.source)
            return execute("EVALSHA", self.sha, self.keys, *keys_and_args)

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

    async def run_async(
        self, client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster, *keys_and_args: Any
    ) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, self.keys, *keys_and_args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, self.keys, *keys_and_args)


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
# acquire(key, now_ms, open_timeout_ms, half_open_calls, ttl_ms, trial_timeout_ms)
# returns {allowed (0/1), state, failures, wait_ms, generation}; wait_ms > 0 on a refusal
_ACQUIRE_FUNCTION = """
local function acquire(key, now, open_ms, trials_max, ttl, trial_ms)
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
local overdue = since + trial_ms
if now >= overdue then
  -- Trials not all concluded trial_ms (half_open_max_wait) after the half-open period
  -- began (hung, their process died, or too few calls came) count as failed: the breaker
  -- re-opens as of that deadline, and admits a fresh trial once the open timeout has
  -- passed since then.
  gen = gen + 1
  local wait = overdue + open_ms - now
  if wait > 0 then
    redis.call('HSET', key, 's', 1, 'o', overdue, 'g', gen)
    redis.call('PEXPIRE', key, ttl)
    return {0, 1, failures, wait, gen}
  end
  redis.call('HSET', key, 'h', now, 't', 1, 'k', 0, 'g', gen)
elseif trials >= trials_max then
  return {0, 2, failures, overdue - now, gen}  -- every trial slot is taken
else
  redis.call('HINCRBY', key, 't', 1)
end
redis.call('PEXPIRE', key, ttl)
return {1, 2, failures, 0, gen}
end
"""

# KEYS[1] the breaker's hash
# ARGV: now_ms or "", open_timeout_ms, half_open_calls, ttl_ms, trial_timeout_ms
# Returns {allowed (0/1), state, failures, wait_ms, generation}
BREAKER_ACQUIRE = LuaScript(
    _NOW_MS
    + _ACQUIRE_FUNCTION
    + """
return acquire(KEYS[1], now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]))
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

# Generic cell rate algorithm: one key per limited client holding the theoretical arrival
# time (TAT, in microseconds) of each window of its limit, space-separated (one window:
# one number, as it always was). A call is allowed when, after adding each window's
# emission interval, every TAT is at most that window's period ahead of now (a burst of
# ``count`` calls, as in ``InMemoryRateLimiter``); then it counts in every window. The key
# expires when the last TAT is reached, so idle clients cost nothing.
#
# A limit's arguments are always the last four of ARGV, so a script that also does other
# work (LIMITED_ACQUIRE) finds them whatever comes before: now_us or "", the windows as
# "interval_us period_us interval_us period_us ...", cost, max_wait_us.
_GCRA_FUNCTIONS = """
local function gcra_windows(spec)
  local interval, period = string.match(spec, '^(%d+) (%d+)$')
  if interval then return {{tonumber(interval), tonumber(period)}} end  -- one window
  local windows = {}
  local numbers = {}
  for n in string.gmatch(spec, '%d+') do numbers[#numbers + 1] = tonumber(n) end
  for i = 1, #numbers, 2 do windows[#windows + 1] = {numbers[i], numbers[i + 1]} end
  return windows
end
-- The wait before a call costing ``cost`` is allowed (<= 0: now), and the stored TATs.
local function gcra_wait(key, now, windows, cost)
  local stored = redis.call('GET', key)
  local tats = {}
  if #windows == 1 then
    tats[1] = tonumber(stored)
  elseif stored then
    for t in string.gmatch(stored, '%S+') do tats[#tats + 1] = tonumber(t) end
  end
  local wait = 0
  for i, w in ipairs(windows) do
    local tat = tats[i] or now
    if tat < now then tat = now end
    local ahead = tat + w[1] * cost - w[2] - now
    if ahead > wait then wait = ahead end
  end
  return wait, tats
end
-- Count a call made at ``at`` (now, or a reserved time ahead) in every window.
local function gcra_spend(key, now, at, windows, tats, cost)
  local parts = {}
  local longest = 1
  for i, w in ipairs(windows) do
    local tat = tats[i] or at
    if tat < at then tat = at end
    tat = tat + w[1] * cost
    tats[i] = tat
    parts[i] = string.format('%.0f', tat)
    if tat - now > longest then longest = tat - now end
  end
  local value = parts[1]
  if #parts > 1 then value = table.concat(parts, ' ') end
  redis.call('SET', key, value, 'PX', math.ceil(longest / 1000))
end
-- {remaining, reset_us} of each window, flattened, after the decision.
local function gcra_left(now, windows, tats, reply)
  for i, w in ipairs(windows) do
    local ahead = (tats[i] or now) - now
    if ahead < 0 then ahead = 0 end
    local left = math.floor((w[2] - ahead) / w[1])
    if left < 0 then left = 0 end
    reply[#reply + 1] = left
    reply[#reply + 1] = ahead
  end
  return reply
end
-- The limit's four arguments, the last of ARGV; ``now_us`` when the caller read TIME.
local function gcra_args(now_us)
  local n = #ARGV
  local now = now_us or tonumber(ARGV[n - 3])
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now, gcra_windows(ARGV[n - 2]), tonumber(ARGV[n - 1]), tonumber(ARGV[n])
end
"""

# KEYS[1] the limiter key
# ARGV: now_us or "", windows, cost, max_wait_us
# Returns {allowed (0/1), retry_after_us, delay_us}
GCRA = LuaScript(
    _GCRA_FUNCTIONS
    + """
local now, windows, cost, max_wait = gcra_args()
local wait, tats = gcra_wait(KEYS[1], now, windows, cost)
if wait > max_wait then return {0, wait, 0} end
if wait < 0 then wait = 0 end
gcra_spend(KEYS[1], now, now + wait, windows, tats, cost)
return {1, 0, wait}
"""
)

# GCRA, also answering what is left of each window (the HTTP RateLimit headers); a cost
# of 0 only looks.
# KEYS[1] the limiter key; ARGV as GCRA's
# Returns {allowed (0/1), retry_after_us, delay_us, remaining_1, reset_us_1, ...}
GCRA_QUOTA = LuaScript(
    _GCRA_FUNCTIONS
    + """
local now, windows, cost, max_wait = gcra_args()
local wait, tats = gcra_wait(KEYS[1], now, windows, cost)
if wait > max_wait then return gcra_left(now, windows, tats, {0, wait, 0}) end
if wait < 0 then wait = 0 end
if cost > 0 then gcra_spend(KEYS[1], now, now + wait, windows, tats, cost) end
return gcra_left(now, windows, tats, {1, 0, wait})
"""
)

# The rate limit and the breaker of one call, in one round trip, in the pipeline's order:
# the rate limit decides first, and its budget is spent only when the breaker admits the
# call too. So a call refused by the limit never takes a half-open trial slot (nor moves an
# elapsed OPEN to HALF_OPEN), and a call refused by the breaker never spends the limit.
#
# KEYS[1] the breaker's hash, KEYS[2] the limiter key
# ARGV: now_ms or "", open_timeout_ms, half_open_calls, ttl_ms, trial_timeout_ms,
#       then the limit's last four (GCRA's: now_us or "", windows, cost, max_wait_us;
#       the wait is not used here: a call that would wait is refused)
# Returns {1 admitted / 0 refused by the breaker, state, failures, wait_ms, generation, 0}
#      or {2 refused by the rate limit, 0, 0, 0, 0, retry_after_us}
LIMITED_ACQUIRE = LuaScript(
    """
local now = tonumber(ARGV[1])
local now_us = tonumber(ARGV[#ARGV - 3])
if not now or not now_us then
  local t = redis.call('TIME')
  now = now or tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  now_us = now_us or tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""
    + _ACQUIRE_FUNCTION
    + _GCRA_FUNCTIONS
    + """
local _, windows, cost = gcra_args(now_us)
local wait, tats = gcra_wait(KEYS[2], now_us, windows, cost)
if wait > 0 then return {2, 0, 0, 0, 0, wait} end
local reply = acquire(KEYS[1], now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]))
if reply[1] == 1 then gcra_spend(KEYS[2], now_us, now_us, windows, tats, cost) end
reply[6] = 0
return reply
""",
    keys=2,
)

# KEYS[1] a hash. Returns {HGETALL's flat field/value list, TIME}: a breaker's report reads
# its state and the scripts' clock from the one node that owns the key (a pipeline with
# TIME would ask some other node of a Redis Cluster, and redis-py refuses it there).
READ_HASH = LuaScript("return {redis.call('HGETALL', KEYS[1]), redis.call('TIME')}")
