-- store_lib.lua - the fixed functions of trustd's Redis function library
-- (the Lua form of the merchant write protocol, processor/proto.h; the
-- module's TD.* commands are the native form, with the same effects).
--
-- store.c loads it after the catalog's part (td_signals_lua(): BN, the
-- base signal names) as one library named after a hash of the text, and
-- registers td_load, td_put, td_part, td_score and td_published under
-- that hash. The Makefile compiles this file into
-- build/gen/store_lib.h as a C string, without its comment lines.

-- A merchant's exact state, watermarks and last publication, read in
-- one atomic step; plus its base values from the signals hash when the
-- packed state is missing or of another catalog (ARGV[1]: this build's
-- fingerprint).
local function td_load(keys, args)
  local s = redis.call('GET', keys[1])
  local w = redis.call('HGETALL', keys[2])
  local m = redis.call('HMGET', keys[4], 'pub_score', 'pub_tier',
    'pub_ms', 'version', 'model_version', 'pub_version')
  for i = 1, 6 do m[i] = m[i] or '' end
  if s and string.sub(s, 9, 16) == args[1] then return {s, w, m} end
  return {s or '', w, m,
    redis.call('HMGET', keys[3], 'as_of_ms', unpack(BN))}
end

-- Marks version v of a score hash as delivered to Kafka; never moves
-- backwards.
local function mark(k, v, score, tier, ms)
  local pv = tonumber(redis.call('HGET', k, 'pub_version') or '0')
  if tonumber(v) <= pv then return 0 end
  redis.call('HSET', k, 'pub_version', v, 'pub_score', score,
    'pub_tier', tier, 'pub_ms', ms)
  return 1
end

-- The score history (history.h): h, the value of key k, with the
-- point head .. version (8 bytes little-endian; exact below 2^53)
-- appended, points over 90 days older than the head dropped, the
-- last 64 kept; what td_history_append() does. Nothing to drop: an
-- APPEND, so that replicas and the AOF get 16 bytes, not the history.
local function secs(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return a + 256 * (b + 256 * (c + 256 * d))
end

local function history(k, h, head, v)
  local n = math.floor(#h / 16)
  local first, horizon = 0, secs(head, 1) - 7776000
  while first < n and secs(h, 16 * first + 1) < horizon do
    first = first + 1
  end
  if n - first > 63 then first = n - 63 end
  local b = {}
  for i = 1, 8 do
    b[i] = v % 256
    v = (v - b[i]) / 256
  end
  local point = head .. string.char(unpack(b))
  if first == 0 and #h == 16 * n then
    redis.call('APPEND', k, point)
  else
    redis.call('SET', k, string.sub(h, 16 * first + 1, 16 * n) .. point)
  end
end

local function head_error()
  return redis.error_reply('ERR history head is not 8 bytes')
end

-- A refused put drops the :next hashes it brought (a crash between
-- their RESTORE and the put leaves signals:next until the merchant's
-- next update, score:next until its next score, replaces them).
local function refuse(keys)
  redis.call('DEL', keys[5], keys[6])
  return {'STALE'}
end

-- A merged state: written only if the stored state is still the one
-- it was merged from (ARGV[1], its version bytes) and no watermark of
-- the applied sources is past the delta's start. The version alone
-- would not do: a cached state carries watermarks an earlier owner
-- wrote for sources this worker replays later (worker.c). Then the
-- state, the watermarks and the readable hash move together.
-- The readable hash was RESTOREd just before as KEYS[5]
-- (signals:next, rdump.h) and is renamed into place: one RESTORE
-- instead of an HSET per field, and its 3 KB never pass through Lua.
-- A new score likewise: the whole score hash, with its next version
-- and the last delivered publication, was RESTOREd as KEYS[6]
-- (score:next), and is renamed into place if the stored hash is still
-- at the version it follows. ARGV: expected version, state, nsrc,
-- (source, first, next) x nsrc; the merchant's last delivered
-- publication not yet marked (version, score, tier, ms; or one ""):
-- an earlier flush's publication rides with this put instead of a
-- td_published call of its own; then, when the put carries a score,
-- the score hash's expected version ("" for none) and the head of
-- its history point (KEYS[7]), appended with the new version. Every
-- guard is
-- checked before the first write, with as few calls as it takes:
-- each redis.call costs Redis about as much as the command itself.
local function td_put(keys, args)
  if redis.call('GETRANGE', keys[1], 0, 7) ~= args[1] then
    return refuse(keys)
  end
  local nsrc = tonumber(args[3])
  local src, wm = {}, {}
  for i = 1, nsrc do
    local p = 1 + 3 * i
    src[i] = args[p]
    wm[2 * i - 1] = args[p]
    wm[2 * i] = args[p + 2]
  end
  if nsrc > 0 then
    local at = redis.call('HMGET', keys[2], unpack(src))
    for i = 1, nsrc do
      if at[i] and tonumber(at[i]) > tonumber(args[2 + 3 * i]) then
        return refuse(keys)
      end
    end
  end
  local p = 4 + 3 * nsrc
  local mk = args[p] ~= ''
  local q = mk and p + 4 or p + 1
  local sv, hd, h = args[q], args[q + 1], nil
  if sv and ((redis.call('HGET', keys[4], 'version') or '') ~= sv or
      redis.call('EXISTS', keys[6]) == 0) then
    return refuse(keys)
  end
  if sv then
    if not hd or #hd ~= 8 then return head_error() end
    h = redis.call('GET', keys[7]) or ''
  end
-- The first write: fails (no signals:next) before any other.
  if redis.pcall('RENAME', keys[5], keys[3]).err then
    return refuse(keys)
  end
  redis.call('SET', keys[1], args[2])
  if nsrc > 0 then redis.call('HSET', keys[2], unpack(wm)) end
  local v = sv and (tonumber(sv) or 0) + 1
  if sv then
    redis.call('RENAME', keys[6], keys[4])
    history(keys[7], h, hd, v)
  end
  if mk then
    mark(keys[4], args[p], args[p + 1], args[p + 2], args[p + 3])
  end
  if sv then return {'OK', v} end
  return {'OK'}
end

-- Partition records. claim bumps the owner epoch (fencing earlier
-- owners) past ARGV[2]-1, the floor the claimer asks for (a record
-- that went back in time may hold an epoch it already used), and
-- returns the stored offsets. set writes committed and intent for the
-- owner's epoch only, and tells a newer owner (TDFENCED) from a store
-- that lost writes (TDLOST): the record is gone, its epoch older than
-- the owner's, or its offsets behind ARGV[5..6], the last ones the
-- owner saw stored.
local function td_part(keys, args)
  if args[1] == 'claim' then
    local e = tonumber(redis.call('HGET', keys[1], 'epoch') or '0')
    local floor = tonumber(args[2] or '1') - 1
    if floor > e then e = floor end
    e = e + 1
    redis.call('HSET', keys[1], 'epoch', string.format('%d', e))
    local r = redis.call('HMGET', keys[1], 'committed', 'intent')
    return {string.format('%d', e), r[1] or '', r[2] or ''}
  end
  local r = redis.call('HMGET', keys[1], 'epoch', 'committed', 'intent')
  if not r[1] then
    return redis.error_reply('TDLOST ' .. keys[1] .. ' is missing')
  end
  local e, mine = tonumber(r[1]), tonumber(args[2])
  if e > mine then
    return redis.error_reply('TDFENCED ' .. keys[1] .. ' is owned by '
      .. 'epoch ' .. r[1] .. ', not ' .. args[2])
  end
  if e < mine then
    return redis.error_reply('TDLOST ' .. keys[1] .. ' is at epoch '
      .. r[1] .. ', behind ' .. args[2])
  end
  if args[5] and (tonumber(r[2] or '-1') < tonumber(args[5]) or
      tonumber(r[3] or '-1') < tonumber(args[6])) then
    return redis.error_reply('TDLOST ' .. keys[1] .. ' is at committed '
      .. (r[2] or 'none') .. ' intent ' .. (r[3] or 'none')
      .. ', behind ' .. args[5] .. '/' .. args[6])
  end
  redis.call('HSET', keys[1], 'committed', args[3], 'intent', args[4])
  return 'OK'
end

-- A new score: reserve the next version, write the fields (ARGV[2..])
-- and the version's history point (KEYS[2]; ARGV[1] its head).
local function td_score(keys, args)
  if #args[1] ~= 8 then return head_error() end
  local h = redis.call('GET', keys[2]) or ''
  local v = redis.call('HINCRBY', keys[1], 'version', 1)
  redis.call('HSET', keys[1], unpack(args, 2))
  history(keys[2], h, args[1], v)
  return v
end

-- A delivered publication not carried by a put (mark() above).
local function td_published(keys, args)
  return mark(keys[1], args[1], args[2], args[3], args[4])
end
