-- paysvc bench: the wrk script of every scenario (see python/paysvc/bench/scenarios.py).
--
-- The bench prepends `local CONFIG = {...}` (scenario, accounts, API ports, log directory, pacing)
-- and runs wrk with one connection per thread, so each thread's Lua state is one connection's state:
-- every response is matched to its request, and open-loop pacing is per connection.
--
-- Every response is written to <log_dir>/thread-NNN.log as one line:
--   <done, monotonic us> <latency us> <HTTP status> <kind>
-- kind: p = payment, b = account balance, e = account entries, l = payment listing.
--
-- Closed loop (rate_per_conn == 0): the next request goes out as soon as the previous answer is in;
-- latency is from the send. Open loop (rate_per_conn > 0): connection i sends on its own fixed
-- schedule (rate_per_conn per second, the connections' schedules staggered evenly). A request whose
-- slot passed while the connection still waited for the previous answer is sent at once and its
-- latency counts from the slot it should have gone out in, not from when it could (no coordinated
-- omission, as wrk2 does); a request sent on time counts from its actual send (wrk's timers have
-- 1 ms steps, so a request never goes out early and the timer's lateness is not counted).

local ffi = require("ffi")
ffi.cdef [[
struct paysvc_bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct paysvc_bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1 -- the clock of Python's time.monotonic() on Linux
local timespec = ffi.new("struct paysvc_bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

-- ---- main state: give each thread (= connection) its API process ----------------------------------

local threads_created = 0

function setup(thread)
  threads_created = threads_created + 1
  local port = CONFIG.ports[((threads_created - 1) % #CONFIG.ports) + 1]
  thread.addr = wrk.lookup("127.0.0.1", tostring(port))[1]
  thread:set("thread_id", threads_created)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

-- ---- thread state: one connection ----------------------------------------------------------------

local accounts = CONFIG.accounts
local n_accounts = #accounts
local auth = "Bearer " .. CONFIG.api_key
local get_headers = { ["Authorization"] = auth }
local log_file
local sequence = 0
local flushed_at = 0
local kind = "p"
local sent_at = 0
local start_at = 0      -- what this request's latency counts from
local slot = nil        -- open loop: this request's scheduled send time
local slot_missed = false
local interval_us = 0
local next_slot = 0

function init(args)
  math.randomseed(thread_id * 7919 + now_us() % 1000003)
  log_file = io.open(string.format("%s/thread-%03d.log", CONFIG.log_dir, thread_id), "w")
  log_file:setvbuf("full", 16384)
  if CONFIG.rate_per_conn > 0 then
    interval_us = 1000000 / CONFIG.rate_per_conn
    -- stagger the connections' schedules evenly over one interval
    next_slot = now_us() + 20000 + interval_us * (thread_id - 1) / CONFIG.connections
  end
end

local function two_accounts()
  local i = math.random(n_accounts)
  local j = math.random(n_accounts - 1)
  if j >= i then j = j + 1 end
  return accounts[i], accounts[j]
end

local function payment(source, destination)
  sequence = sequence + 1
  local body = string.format('{"amount":%d,"currency":"USD","source":"%s","destination":"%s"}',
    CONFIG.amount, source, destination)
  local headers = {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", CONFIG.key_prefix, thread_id, sequence),
  }
  return wrk.format("POST", "/v1/payments", headers, body)
end

local function next_request()
  local mode = CONFIG.mode
  if mode == "hot_merchant" then
    kind = "p"
    return payment(accounts[math.random(n_accounts)], CONFIG.merchant)
  end
  if mode == "read_heavy" then
    local r = math.random()
    local mix = CONFIG.mix
    if r < mix.balance then
      kind = "b"
      return wrk.format("GET", "/v1/accounts/" .. accounts[math.random(n_accounts)], get_headers)
    elseif r < mix.balance + mix.entries then
      kind = "e"
      return wrk.format("GET", "/v1/accounts/" .. accounts[math.random(n_accounts)] .. "/entries?limit=10",
        get_headers)
    elseif r < mix.balance + mix.entries + mix.listing then
      kind = "l"
      return wrk.format("GET", "/v1/payments?limit=10", get_headers)
    end
  end
  kind = "p"
  return payment(two_accounts())
end

if CONFIG.rate_per_conn > 0 then
  -- wrk calls delay() before each request of a connection (after the previous answer).
  function delay()
    local now = now_us()
    slot = next_slot
    next_slot = next_slot + interval_us
    slot_missed = slot <= now
    if slot_missed then
      return 0
    end
    return math.ceil((slot - now) / 1000)
  end
end

function request()
  local req = next_request()
  sent_at = now_us()
  if slot ~= nil and slot_missed then
    start_at = slot
  else
    start_at = sent_at
  end
  return req
end

function response(status, headers, body)
  local now = now_us()
  log_file:write(string.format("%d %d %d %s\n", now, now - start_at, status, kind))
  if now - flushed_at > 1000000 then -- about once a second, so the bench can show progress
    log_file:flush()
    flushed_at = now
  end
end
