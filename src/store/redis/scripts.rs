//! The Lua scripts of the Redis store: each multi-key step that must be atomic (first use,
//! take, compare-and-set, revoke with its feed entry, the audit append that spends replay
//! marks, the purges, the shared rate counter) is one script, which Redis runs without
//! interleaving another client's commands.

use super::*;

/// `max(last + 1, TIME in µs)`, stored; shared by the scripts that append to the feed.
/// `KEYS[2]` is the feed, `KEYS[3]` the position counter.
pub(super) const FEED_APPEND: &str = r"
local function feed_append(json)
  local t = redis.call('TIME')
  local pos = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  if last + 1 > pos then pos = last + 1 end
  local p = string.format('%.0f', pos)
  redis.call('SET', KEYS[3], p)
  redis.call('ZADD', KEYS[2], p, p .. ':' .. json)
  return pos
end
";

/// KEYS[1] mark; ARGV: expiry, now, ttl. 1 = first use, 0 = replay.
pub(super) const FIRST_USE: &str = r"
local seen = redis.call('GET', KEYS[1])
if seen and tonumber(ARGV[2]) < tonumber(seen) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// KEYS[1] record, KEYS[2] index; ARGV: id, expiry or '', value, ttl or ''.
pub(super) const PUT: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'v', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
";

/// KEYS[1] record, KEYS[2] index; ARGV: id. Returns [expiry, value] (nil, nil if absent).
pub(super) const TAKE: &str = r"
local r = redis.call('HMGET', KEYS[1], 'e', 'v')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return r
";

/// KEYS[1] record; ARGV: expected value, now, new expiry or '', new value, ttl or ''.
/// 1 = replaced; 0 = absent, expired or holding something else (left as it is).
pub(super) const REPLACE: &str = r"
local r = redis.call('HMGET', KEYS[1], 'e', 'v')
if not r[2] or r[2] ~= ARGV[1] then return 0 end
if r[1] and r[1] ~= '' and tonumber(ARGV[2]) >= tonumber(r[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[3], 'v', ARGV[4])
if ARGV[5] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[5]) else redis.call('PERSIST', KEYS[1]) end
return 1
";

/// KEYS[1] revocation, KEYS[2] feed, KEYS[3] counter; ARGV: json, until or '', ttl or ''.
pub(super) const REVOKE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'j', ARGV[1], 'u', ARGV[2])
if ARGV[3] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return feed_append(ARGV[1])
";

/// KEYS as REVOKE; ARGV: the JSON read before, the lifted JSON. 0 = nothing to lift,
/// -1 = changed since it was read (retry), else the feed position.
pub(super) const UNREVOKE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'j')
if not cur then return 0 end
if cur ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
return feed_append(ARGV[2])
";

/// KEYS[1] audit list, KEYS[2..] the replay marks some entries spend; ARGV: seq, prev hash,
/// then per entry five values: the index in KEYS of the mark it spends (0 = none), the mark's
/// expiry, now, its TTL, the entry. {1} = all appended (and their marks set); {0, length,
/// last hash} = the head moved (or the guess was wrong); {2, i, j, …} = entries i, j, … (from
/// 0) spend a mark already used (by an earlier request, or earlier in this batch): nothing
/// written.
pub(super) const AUDIT_APPEND: &str = r"
local n = redis.call('LLEN', KEYS[1])
local head = string.rep('\0', 32)
if n > 0 then head = string.sub(redis.call('LINDEX', KEYS[1], -1), 33, 64) end
if tonumber(ARGV[1]) ~= n + 1 or ARGV[2] ~= head then return {0, n, head} end
local count = (#ARGV - 2) / 5
local spent = {}
local replays = {2}
for i = 0, count - 1 do
  local b = 3 + i * 5
  local m = tonumber(ARGV[b])
  if m > 0 then
    local k = KEYS[m]
    local seen = redis.call('GET', k)
    if spent[k] or (seen and tonumber(ARGV[b + 2]) < tonumber(seen)) then
      table.insert(replays, i)
    else
      spent[k] = true
    end
  end
end
if #replays > 1 then return replays end
for i = 0, count - 1 do
  local b = 3 + i * 5
  local m = tonumber(ARGV[b])
  if m > 0 then redis.call('SET', KEYS[m], ARGV[b + 1], 'EX', ARGV[b + 3]) end
  redis.call('RPUSH', KEYS[1], ARGV[b + 4])
end
return {1}
";

/// KEYS: replay marks; ARGV[1] now. Deletes the expired ones, returns how many.
pub(super) const PURGE_MARKS: &str = r"
local now = tonumber(ARGV[1])
local n = 0
for _, k in ipairs(KEYS) do
  local e = redis.call('GET', k)
  if e and tonumber(e) <= now then redis.call('DEL', k); n = n + 1 end
end
return n
";

/// KEYS: revocations; ARGV[1] now. Deletes the expired ones, returns how many.
pub(super) const PURGE_REVOCATIONS: &str = r"
local now = tonumber(ARGV[1])
local n = 0
for _, k in ipairs(KEYS) do
  local u = redis.call('HGET', k, 'u')
  if u and u ~= '' and tonumber(u) <= now then redis.call('DEL', k); n = n + 1 end
end
return n
";

/// KEYS[1] index, KEYS[2..] records; ARGV[1] now, ARGV[2..] their ids. Deletes expired
/// records (counted) and drops index entries whose record is gone (not counted).
pub(super) const PURGE_RECORDS: &str = r"
local now = tonumber(ARGV[1])
local n = 0
for i = 2, #KEYS do
  local e = redis.call('HGET', KEYS[i], 'e')
  if not e then
    redis.call('ZREM', KEYS[1], ARGV[i])
  elseif e ~= '' and tonumber(e) <= now then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
";

/// KEYS[1] counter; ARGV[1] ttl in seconds. A fixed-window counter: INCR, and the window's
/// expiry set by its first hit.
pub(super) const COUNT_HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
";

pub(super) struct Scripts {
    pub(super) first_use: Script,
    pub(super) put: Script,
    pub(super) take: Script,
    pub(super) replace: Script,
    pub(super) revoke: Script,
    pub(super) unrevoke: Script,
    pub(super) audit_append: Script,
    pub(super) purge_marks: Script,
    pub(super) purge_revocations: Script,
    pub(super) purge_records: Script,
    pub(super) count_hit: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            first_use: Script::new(FIRST_USE),
            put: Script::new(PUT),
            take: Script::new(TAKE),
            replace: Script::new(REPLACE),
            revoke: Script::new(&format!("{FEED_APPEND}{REVOKE}")),
            unrevoke: Script::new(&format!("{FEED_APPEND}{UNREVOKE}")),
            audit_append: Script::new(AUDIT_APPEND),
            purge_marks: Script::new(PURGE_MARKS),
            purge_revocations: Script::new(PURGE_REVOCATIONS),
            purge_records: Script::new(PURGE_RECORDS),
            count_hit: Script::new(COUNT_HIT),
        }
    }
}
