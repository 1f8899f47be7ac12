-- Open-loop load for wrk (one connection per thread, `wrk -t N -c N`): each connection is a
-- lane that sends at its own fixed times (lane k of N sends requests k, k+N, k+2N, ... of a
-- schedule at `rate` a second), and every latency is timed from when its request was due, not
-- from when it went out. A late answer delays the lane's next send, and that delay counts in
-- the next latency, as wrk2 does (no coordinated omission).
-- Usage: wrk -t N -c N -d S -s openloop.lua URL -- RATE OUT BODYFILE N [TOKEN]
-- wrk calls setup() for each thread in turn and starts that thread at once, so the number of
-- lanes (N, equal to -t and -c) comes as an argument.
-- Writes one latency per line to OUT (microseconds), then "sent <n> errors <n>".
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } cauce_timespec;
  int clock_gettime(int clock, cauce_timespec *ts);
]]
local ts = ffi.new("cauce_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC: one clock for every thread
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
local first_due = nil

function setup(thread)
  first_due = first_due or now_us() + 200e3 -- every lane's schedule starts at the same instant
  thread:set("lane", #threads)
  thread:set("start", first_due)
  table.insert(threads, thread)
end

function init(args)
  rate, out, lanes = tonumber(args[1]), args[2], tonumber(args[4])
  local handle = assert(io.open(args[3], "rb"))
  wrk.method, wrk.body = "POST", handle:read("*a")
  handle:close()
  wrk.headers["Content-Type"] = "application/json"
  if args[5] then
    wrk.headers["Authorization"] = "Bearer " .. args[5]
  end
  req = wrk.format()
  sent, errors, latencies = 0, 0, {}
end

local function due(n)
  return start + (lane + n * lanes) * 1e6 / rate
end

function delay()
  -- wrk's timers count whole milliseconds: round up, so a request never leaves early.
  local wait = (due(sent) - now_us()) / 1e3
  return wait > 0 and math.ceil(wait) or 0
end

function request()
  return req
end

function response(status, headers, body)
  latencies[#latencies + 1] = now_us() - due(sent)
  sent = sent + 1
  if status ~= 200 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local handle = assert(io.open(threads[1]:get("out"), "w"))
  local total, failed = 0, 0
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do
      handle:write(string.format("%.1f\n", value))
    end
    total = total + thread:get("sent")
    failed = failed + thread:get("errors")
  end
  local socket = summary.errors
  failed = failed + socket.connect + socket.read + socket.write + socket.timeout
  handle:write(string.format("sent %d errors %d\n", total, failed))
  handle:close()
end
