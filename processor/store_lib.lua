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
  local point = head .. struct.pack('<I8', v)
  if first == 0 and #h == 16 * n then
    redis.call('APPEND', k, point)
  else
    redis.call('SET', k, string.sub(h, 16 * first + 1, 16 * n) .. point)
  end
end

local function head_error()
  return redis.error_reply('ERR history head is not 8 bytes')
end

-- Replies built once: a put allocates as little as it can.
local OK, STALE = {'OK'}, {'STALE'}

-- A refused put drops the signals:next hash it brought (a crash
-- between its RESTORE and the put leaves it until the merchant's next
-- update replaces it).
local function refuse(keys)
  redis.call('DEL', keys[4])
  return STALE
end

-- A merged state: written only if the stored state is still the one
-- it was merged from (ARGV[1], its version bytes) and no watermark of
-- the applied sources is past the delta's start. The version alone
-- would not do: a cached state carries watermarks an earlier owner
-- wrote for sources this worker replays later (worker.c). Then the
-- state, the watermarks and the readable hash move together.
-- The readable hash was RESTOREd just before as KEYS[4]
-- (signals:next, rdump.h) and is renamed into place: one RESTORE
-- instead of an HSET per field, and its 3 KB never pass through Lua,
-- where every byte of an argument is hashed.
-- KEYS: state, wm, signals, signals:next; then the score hash when the
-- put marks a publication or carries a score, and the score history
-- when it carries a score. ARGV: expected version, state; the
-- merchant's last delivered publication not yet marked (version,
-- score, tier, ms), if any: an earlier flush's publication rides with
-- this put instead of a td_published call of its own; with a score,
-- the score hash's expected version ("" for none), the new score hash
-- as a DUMP payload (under 1 KB, RESTOREd over KEYS[5]) and the head
-- of its history point (KEYS[6]), appended with the new version; then
-- (source, first, next) for each source applied. The counts tell the
-- parts apart: six KEYS for a score, and only the mark's four
-- arguments leave #ARGV - 2 one above a multiple of three. Every
-- element of KEYS and ARGV costs Redis a hashed string and a table
-- slot (about 1,500 instructions, more for the state's bytes), so a
-- put sends only those it uses. Every guard is checked before the
-- first write, with as few calls as it takes: each redis.call costs
-- Redis about as much as the command itself. The first write is the
-- one that can fail: the RENAME (no signals:next), or, with a score,
-- the RESTORE of its payload once signals:next is known to exist
-- (Redis' error if it refuses the payload). A refused put writes
-- nothing but the DEL of the signals:next it brought; a failed one
-- nothing at all.
local function td_put(keys, args)
  local call = redis.call
  if call('GETRANGE', keys[1], '0', '7') ~= args[1] then
    return refuse(keys)
  end
  local n = #args
  local mk = (n - 2) % 3 == 1
  local q = mk and 7 or 3
  local sc = #keys > 5
  local s = sc and q + 3 or q
  local nsrc = (n - s + 1) / 3
  if nsrc < 0 or nsrc % 1 ~= 0 or (mk and not keys[5]) then
    return redis.error_reply('ERR td_put: wrong number of arguments')
  end
  -- A watermark equal to the delta's start (the usual case: the
  -- stored next offset) passes without a conversion.
  local at
  if nsrc == 1 then
    at = call('HGET', keys[2], args[s])
    if at and at ~= args[s + 1] and
        tonumber(at) > tonumber(args[s + 1]) then
      return refuse(keys)
    end
  elseif nsrc > 1 then
    if nsrc == 2 then
      at = call('HMGET', keys[2], args[s], args[s + 3])
    else
      local src = {}
      for i = 1, nsrc do src[i] = args[s + 3 * i - 3] end
      at = call('HMGET', keys[2], unpack(src))
    end
    for i = 1, nsrc do
      local a, f = at[i], args[s + 3 * i - 2]
      if a and a ~= f and tonumber(a) > tonumber(f) then
        return refuse(keys)
      end
    end
  end
  local v
  if sc then
    local sv, hd = args[q], args[q + 2]
    if (call('HGET', keys[5], 'version') or '') ~= sv then
      return refuse(keys)
    end
    if #hd ~= 8 then return head_error() end
    if call('EXISTS', keys[4]) == 0 then return STALE end
    local h = call('GET', keys[6]) or ''
    local r = redis.pcall('RESTORE', keys[5], '0', args[q + 1], 'REPLACE')
    if r.err then return r end
    call('RENAME', keys[4], keys[3])
    v = (tonumber(sv) or 0) + 1
    history(keys[6], h, hd, v)
  elseif redis.pcall('RENAME', keys[4], keys[3]).err then
    return STALE
  end
  call('SET', keys[1], args[2])
  if nsrc == 1 then
    call('HSET', keys[2], args[s], args[s + 2])
  elseif nsrc == 2 then
    call('HSET', keys[2], args[s], args[s + 2], args[s + 3], args[s + 5])
  elseif nsrc > 2 then
    local wm = {}
    for i = 1, nsrc do
      wm[2 * i - 1] = args[s + 3 * i - 3]
      wm[2 * i] = args[s + 3 * i - 1]
    end
    call('HSET', keys[2], unpack(wm))
  end
  if mk then mark(keys[5], args[3], args[4], args[5], args[6]) end
  if v then return {'OK', v} end
  return OK
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
