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
    "BREAKER_RETRY",
    "BREAKER_RETRY_BUDGETED",
    "GCRA",
    "GCRA_QUOTA",
    "LIMITED_ACQUIRE",
    "READ_HASH",
    "RETRY_BUDGET",
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
# o (opened at, ms), d (the current open period, ms: grows on re-opens), n (re-opens since
# the breaker last closed), h (half-open since, ms), t (trial calls admitted), k (trial
# successes), g (generation: bumped on every transition, so an outcome reported for a call
# admitted under an older state cannot move the newer one), x (1 when forced open).
# With a sliding window (rate or slow-call mode), in the same hash, bounded by its size:
# wc / wf / ws (calls, failures, slow calls in the window), and either a ring of the last
# window_size outcomes (count: r<i> = failed + 2 * slow, wi the next slot) or per-second
# buckets (time: c<i> / e<i> / w<i> for second % window_size, wl the last second).
# A closed breaker with no failures and no window needs no key at all, so healthy
# consecutive-mode breakers cost nothing.
#
# cfg (one argument, constant per breaker): "open_ms trials_max ttl_ms trial_ms threshold
# window_mode (0 none, 1 count, 2 time) window_size minimum_calls failure_rate slow_rate
# backoff_multiplier max_open_ms" (-1: not set).
# carry: "" or "generation fast slow": closed-state successes of this process not yet
# told (window mode), added before anything else when the generation still holds.
# The common case first, before the clock is read or the functions below are made (the
# script's body runs on every call): no key and nothing carried is a closed breaker with
# nothing counted.
_HEALTHY = """
local function healthy(key, carry)
  return carry == '' and redis.call('EXISTS', key) == 0
end
"""

_BREAKER_FUNCTIONS = """
local function config(text)
  local c = {}
  for x in string.gmatch(text, '%S+') do c[#c + 1] = tonumber(x) end
  return {open = c[1], trials = c[2], ttl = c[3], trial = c[4], threshold = c[5],
    wmode = c[6], wsize = c[7], wmin = c[8], frate = c[9], srate = c[10], mult = c[11],
    maxopen = c[12]}
end

-- the open period after n re-opens: open_ms * multiplier^n, at most max_open_ms
local function open_for(cfg, n)
  local d = cfg.open
  if n > 0 and cfg.mult > 1 then d = math.floor(cfg.open * cfg.mult ^ n + 0.5) end
  if cfg.maxopen >= 0 and d > cfg.maxopen then d = cfg.maxopen end
  if d > 140737488355328 then d = 140737488355328 end -- 2^47 ms: integers stay exact
  return d
end

-- outlives a hung trial and its re-open, and a time window's span
local function expire(key, cfg, d)
  local ttl = math.max(cfg.ttl, cfg.trial + 2 * d)
  if cfg.wmode == 2 then ttl = math.max(ttl, cfg.wsize * 1000) end
  redis.call('PEXPIRE', key, ttl)
end

local function win_load(key)
  local v = redis.call('HMGET', key, 'wc', 'wf', 'ws', 'wi', 'wl')
  return {c = tonumber(v[1]) or 0, f = tonumber(v[2]) or 0, s = tonumber(v[3]) or 0,
    i = tonumber(v[4]) or 0, l = tonumber(v[5]) or 0}
end

local function win_save(key, w, failures)
  redis.call('HSET', key, 'wc', w.c, 'wf', w.f, 'ws', w.s, 'wi', w.i, 'wl', w.l, 'f', failures)
end

local function win_clear(key, w, slot)
  local names = {'c' .. slot, 'e' .. slot, 'w' .. slot}
  local v = redis.call('HMGET', key, names[1], names[2], names[3])
  if v[1] then
    w.c = w.c - (tonumber(v[1]) or 0)
    w.f = w.f - (tonumber(v[2]) or 0)
    w.s = w.s - (tonumber(v[3]) or 0)
    redis.call('HDEL', key, names[1], names[2], names[3])
  end
end

-- time window: forget the seconds that fell out of it (work bounded by the window size,
-- and by the buckets present when the whole window went stale)
local function win_expire(key, cfg, w, sec)
  if sec <= w.l then return end
  local size = cfg.wsize
  if w.c > 0 then
    local first = math.max(w.l + 1, sec - size + 1)
    if sec - first + 1 >= size then
      local stale = {}
      for _, name in ipairs(redis.call('HKEYS', key)) do
        if string.match(name, '^[cew]%d+$') then stale[#stale + 1] = name end
      end
      for i = 1, #stale, 1000 do
        redis.call('HDEL', key, unpack(stale, i, math.min(i + 999, #stale)))
      end
      w.c, w.f, w.s = 0, 0, 0
    else
      for second = first, sec do win_clear(key, w, second % size) end
    end
  end
  w.l = sec
end

local function win_add(key, cfg, w, failed, slow, now)
  if cfg.wmode == 2 then
    local sec = math.floor(now / 1000)
    win_expire(key, cfg, w, sec)
    local slot = sec % cfg.wsize
    redis.call('HINCRBY', key, 'c' .. slot, 1)
    if failed == 1 then redis.call('HINCRBY', key, 'e' .. slot, 1) end
    if slow == 1 then redis.call('HINCRBY', key, 'w' .. slot, 1) end
  else
    local slot = w.i
    w.i = (slot + 1) % cfg.wsize
    local old = tonumber(redis.call('HGET', key, 'r' .. slot))
    if old then
      w.c = w.c - 1
      w.f = w.f - old % 2
      w.s = w.s - math.floor(old / 2)
    end
    redis.call('HSET', key, 'r' .. slot, failed + 2 * slow)
  end
  w.c = w.c + 1
  w.f = w.f + failed
  w.s = w.s + slow
end

-- true when the window's rates open the breaker (as CircuitBreaker._add_to_window)
local function win_trips(cfg, w)
  if w.c < cfg.wmin then return false end
  if cfg.frate >= 0 and w.f >= cfg.frate * w.c then return true end
  if cfg.srate >= 0 and w.s >= cfg.srate * w.c then return true end
  return false
end

-- CLOSED -> OPEN, or HALF_OPEN -> OPEN again (reopens > 0); returns the open period
local function open(key, cfg, at, gen, reopens)
  local d = open_for(cfg, reopens)
  redis.call('HSET', key, 's', 1, 'o', at, 'd', d, 'n', reopens, 'g', gen)
  expire(key, cfg, d)
  return d
end

-- HALF_OPEN -> CLOSED: every count starts afresh (the window and the re-opens included)
local function close(key, gen)
  redis.call('DEL', key)
  redis.call('HSET', key, 'g', gen)
end

-- one outcome of a call admitted while CLOSED (failed, slow: 0/1); true when it opened
local function closed_outcome(key, cfg, w, failed, slow, now, failures)
  if failed == 1 then failures = failures + 1 else failures = 0 end
  local trips = false
  if w then
    win_add(key, cfg, w, failed, slow, now)
    trips = win_trips(cfg, w)
  end
  if not trips and failed == 1 and failures >= cfg.threshold then trips = true end
  return trips, failures
end

-- the closed-state successes carried by this call ({gen, fast, slow} or nil), added in
-- order (fast ones first) until one opens the breaker; returns state, failures, gen
local function apply_carry(key, cfg, now, carry, state, failures, gen)
  if not carry or state ~= 0 or carry[1] ~= gen or cfg.wmode == 0 then
    return state, failures, gen
  end
  local w = win_load(key)
  local total = carry[2] + carry[3]
  for i = 1, total do
    local slow = 0
    if i > carry[2] then slow = 1 end
    local trips
    trips, failures = closed_outcome(key, cfg, w, 0, slow, now, failures)
    if trips then
      win_save(key, w, failures)
      gen = gen + 1
      open(key, cfg, now, gen, 0)
      return 1, failures, gen
    end
  end
  win_save(key, w, failures)
  expire(key, cfg, cfg.open)
  return 0, failures, gen
end

local function parse_carry(text)
  if text == '' then return nil end
  local c = {}
  for x in string.gmatch(text, '%S+') do c[#c + 1] = tonumber(x) end
  return c
end

-- admit one call or refuse it: {allowed (0/1), state, failures, wait_ms, generation}
local function acquire(key, now, cfg, carry)
  local v = redis.call('HMGET', key, 's', 'f', 'o', 'h', 't', 'g', 'x', 'd', 'n')
  local state = tonumber(v[1]) or 0
  local failures = tonumber(v[2]) or 0
  local gen = tonumber(v[6]) or 0
  if v[7] == '1' then return {0, 1, failures, cfg.open, gen} end
  if state == 0 then
    if carry then
      state, failures, gen = apply_carry(key, cfg, now, carry, 0, failures, gen)
    elseif v[1] then
      expire(key, cfg, cfg.open)
    end
    if state == 0 then return {1, 0, failures, 0, gen} end
    return {0, 1, failures, open_for(cfg, 0), gen}
  end
  local d = tonumber(v[8]) or cfg.open
  local reopens = tonumber(v[9]) or 0
  if state == 1 then
    local wait = (tonumber(v[3]) or 0) + d - now
    if wait > 0 then return {0, 1, failures, wait, gen} end
    gen = gen + 1
    redis.call('HSET', key, 's', 2, 'h', now, 't', 1, 'k', 0, 'g', gen)
    expire(key, cfg, d)
    return {1, 2, failures, 0, gen}
  end
  local trials = tonumber(v[5]) or 0
  local overdue = (tonumber(v[4]) or 0) + cfg.trial
  if now >= overdue then
    -- Trials not all concluded trial_ms (half_open_max_wait) after the first was admitted
    -- (hung, their process died, or too few calls came) count as failed: the breaker
    -- re-opens as of that deadline, and admits a fresh trial once its (grown) open period
    -- has passed since.
    gen = gen + 1
    d = open(key, cfg, overdue, gen, reopens + 1)
    local wait = overdue + d - now
    if wait > 0 then return {0, 1, failures, wait, gen} end
    redis.call('HSET', key, 's', 2, 'h', now, 't', 1, 'k', 0)
  elseif trials >= cfg.trials then
    return {0, 2, failures, overdue - now, gen} -- every trial slot is taken
  else
    redis.call('HINCRBY', key, 't', 1)
  end
  expire(key, cfg, d)
  return {1, 2, failures, 0, gen}
end

-- the outcome ('1' success, '0' failure, 'r' released) of a call admitted under
-- generation seen: {state, failures, generation, opened_at_ms}
local function record(key, now, cfg, carry, outcome, seen, slow)
  local v = redis.call('HMGET', key, 's', 'f', 'g', 'k', 'o', 't', 'n', 'h')
  local state = tonumber(v[1]) or 0
  local failures = tonumber(v[2]) or 0
  local gen = tonumber(v[3]) or 0
  local opened = tonumber(v[5]) or 0
  if state == 2 and now >= (tonumber(v[8]) or 0) + cfg.trial then
    -- a trial outcome past the half-open wait is late: the breaker re-opened at its end
    opened = (tonumber(v[8]) or 0) + cfg.trial
    state = 1
    gen = gen + 1
    open(key, cfg, opened, gen, (tonumber(v[7]) or 0) + 1)
  end
  if carry then
    state, failures, gen = apply_carry(key, cfg, now, carry, state, failures, gen)
    if state == 1 then opened = now end
  end
  if seen ~= gen then return {state, failures, gen, opened} end
  if outcome == 'r' then
    if state == 2 and (tonumber(v[6]) or 0) > 0 then redis.call('HINCRBY', key, 't', -1) end
    return {state, failures, gen, opened}
  end
  if state == 0 then
    local failed = 1
    if outcome == '1' then failed = 0 end
    if failed == 0 and failures == 0 and cfg.wmode == 0 then return {0, 0, gen, opened} end
    local w = nil
    if cfg.wmode > 0 then w = win_load(key) end
    local trips
    trips, failures = closed_outcome(key, cfg, w, failed, slow, now, failures)
    if w then win_save(key, w, failures) else redis.call('HSET', key, 'f', failures) end
    if trips then
      state = 1
      opened = now
      gen = gen + 1
      open(key, cfg, now, gen, 0)
    else
      expire(key, cfg, cfg.open)
    end
  elseif state == 2 then
    if outcome == '1' then
      local ok = (tonumber(v[4]) or 0) + 1
      if ok >= cfg.trials then
        state = 0
        failures = 0
        gen = gen + 1
        close(key, gen)
      else
        redis.call('HSET', key, 'k', ok)
      end
      expire(key, cfg, cfg.open)
    else
      state = 1
      opened = now
      gen = gen + 1
      open(key, cfg, now, gen, (tonumber(v[7]) or 0) + 1)
    end
  end
  return {state, failures, gen, opened}
end
"""

# KEYS[1] the breaker's hash
# ARGV: now_ms or "", cfg, carry
# Returns {allowed (0/1), state, failures, wait_ms, generation}; wait_ms > 0 on a refusal
BREAKER_ACQUIRE = LuaScript(
    _HEALTHY
    + """
if healthy(KEYS[1], ARGV[3]) then return {1, 0, 0, 0, 0} end
"""
    + _NOW_MS
    + _BREAKER_FUNCTIONS
    + """
return acquire(KEYS[1], now, config(ARGV[2]), parse_carry(ARGV[3]))
"""
)

# KEYS[1] the breaker's hash
# ARGV: now_ms or "", cfg, carry, outcome ('1' success, '0' failure, 'r' released: the
#       call ended without a countable outcome, so a half-open trial slot is given back),
#       generation seen at acquire, slow (0/1)
# Returns {state, failures, generation, opened_at_ms}
BREAKER_RECORD = LuaScript(
    _NOW_MS
    + _BREAKER_FUNCTIONS
    + """
return record(KEYS[1], now, config(ARGV[2]), parse_carry(ARGV[3]), ARGV[4], tonumber(ARGV[5]),
  tonumber(ARGV[6]))
"""
)

# A failed attempt that will be retried: its failure recorded and the next attempt admitted
# (or refused), in one round trip.
# KEYS[1] the breaker's hash
# ARGV: now_ms or "", cfg, carry, generation seen at acquire, slow (0/1)
# Returns what BREAKER_ACQUIRE returns, for the next attempt
BREAKER_RETRY = LuaScript(
    _NOW_MS
    + _BREAKER_FUNCTIONS
    + """
local cfg = config(ARGV[2])
record(KEYS[1], now, cfg, parse_carry(ARGV[3]), '0', tonumber(ARGV[4]), tonumber(ARGV[5]))
return acquire(KEYS[1], now, cfg, nil)
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
# ARGV: now_ms or "", cfg, carry (as BREAKER_ACQUIRE), then the limit's last four (GCRA's:
#       now_us or "", windows, cost, max_wait_us; the wait is not used here: a call that
#       would wait is refused)
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
    + _GCRA_FUNCTIONS
    + _HEALTHY
    + """
local _, windows, cost = gcra_args(now_us)
local wait, tats = gcra_wait(KEYS[2], now_us, windows, cost)
if wait > 0 then return {2, 0, 0, 0, 0, wait} end
if healthy(KEYS[1], ARGV[3]) then
  gcra_spend(KEYS[2], now_us, now_us, windows, tats, cost)
  return {1, 0, 0, 0, 0, 0}
end
"""
    + _BREAKER_FUNCTIONS
    + """
local reply = acquire(KEYS[1], now, config(ARGV[2]), parse_carry(ARGV[3]))
if reply[1] == 1 then gcra_spend(KEYS[2], now_us, now_us, windows, tats, cost) end
reply[6] = 0
return reply
""",
    keys=2,
)

# KEYS[1] a hash. Returns {HGETALL's flat field/value list, TIME}: a breaker's report reads
# its state and the scripts' clock from the one node that owns the key (a pipeline with
# TIME would ask some other node of a Redis Cluster, and redis-py refuses it there).
# The retry budget of one operation, shared by every process (error_handling/_retry_budget
# has the in-memory twin and why the bound holds). Hash fields per bucket of
# window_ms / slices: c<i> the calls pushed into bucket i, s<i> the retries it granted. The
# calls of the window are those of the buckets entirely inside it (a lower bound), its
# retries those of every bucket overlapping it (an upper bound); buckets entirely before
# it are deleted on the way, so the hash holds at most 2 × (slices + 2) fields.
# Budget arguments (the last six of ARGV): calls pushed by this process, ratio, reserve
# (retries always allowed in a window), window_ms, slices, ttl_ms.
_BUDGET_FUNCTIONS = """
local function budget_window(key, now, pushed, window, slices, ttl)
  local width = math.max(1, math.floor(window / slices))
  local index = math.floor(now / width)
  local start = now - window
  if pushed > 0 then redis.call('HINCRBY', key, 'c' .. index, pushed) end
  local fields = redis.call('HGETALL', key)
  local calls, granted = 0, 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    local at = tonumber(string.sub(name, 2))
    if at == nil or (at + 1) * width <= start then
      redis.call('HDEL', key, name)
    elseif string.sub(name, 1, 1) == 'c' then
      if at * width >= start then calls = calls + tonumber(fields[i + 1]) end
    else
      granted = granted + tonumber(fields[i + 1])
    end
  end
  redis.call('PEXPIRE', key, ttl)
  return calls, granted, index
end
local function budget_args(n)
  return tonumber(ARGV[n - 5]), tonumber(ARGV[n - 4]), tonumber(ARGV[n - 3]),
    tonumber(ARGV[n - 2]), tonumber(ARGV[n - 1]), tonumber(ARGV[n])
end
"""

# KEYS[1] the budget key
# ARGV: now_ms or "", then the budget arguments
# Returns {allowed (0/1), retries in the window before this one, calls in the window}
RETRY_BUDGET = LuaScript(
    _NOW_MS
    + _BUDGET_FUNCTIONS
    + """
local pushed, ratio, reserve, window, slices, ttl = budget_args(#ARGV)
local calls, granted, index = budget_window(KEYS[1], now, pushed, window, slices, ttl)
if granted + 1 <= ratio * calls + reserve then
  redis.call('HINCRBY', KEYS[1], 's' .. index, 1)
  return {1, granted, calls}
end
return {0, granted, calls}
"""
)

# BREAKER_RETRY with the operation's retry budget asked in the same round trip: the failure
# recorded, then the budget asked (a refusal admits nothing), then the next attempt
# admitted or refused by the breaker; the budget is spent only when the attempt is admitted.
# KEYS[1] the breaker's hash, KEYS[2] the budget's (the same hash tag: one slot)
# ARGV: BREAKER_RETRY's five, then the budget arguments
# Returns what BREAKER_ACQUIRE returns, or {-1, ...} when the budget refused the retry
BREAKER_RETRY_BUDGETED = LuaScript(
    _NOW_MS
    + _BREAKER_FUNCTIONS
    + _BUDGET_FUNCTIONS
    + """
local cfg = config(ARGV[2])
record(KEYS[1], now, cfg, parse_carry(ARGV[3]), '0', tonumber(ARGV[4]), tonumber(ARGV[5]))
local pushed, ratio, reserve, window, slices, ttl = budget_args(#ARGV)
local calls, granted, index = budget_window(KEYS[2], now, pushed, window, slices, ttl)
if granted + 1 > ratio * calls + reserve then return {-1, 0, 0, 0, 0} end
local reply = acquire(KEYS[1], now, cfg, nil)
if tonumber(reply[1]) == 1 then redis.call('HINCRBY', KEYS[2], 's' .. index, 1) end
return reply
""",
    keys=2,
)

READ_HASH = LuaScript("return {redis.call('HGETALL', KEYS[1]), redis.call('TIME')}")
