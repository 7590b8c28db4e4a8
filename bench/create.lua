-- wrk script: POST /api/v1/payments with a new Idempotency-Key on every request, so each one
-- is a real payment (a replay would only measure the idempotency cache).
--
-- Reads BENCH_TOKEN (a user's access token) and BENCH_MERCHANT_ID from the environment.
-- The key is "<run>-<thread>-<counter>-<random>": the run part (wrk's start time, in seconds)
-- keeps keys unique across wrk runs (the warm-up and the measured run both use this script and
-- start seconds apart), the thread part across wrk's threads (each has its own Lua state and
-- counter), and the random part guards against both.

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local merchant = os.getenv("BENCH_MERCHANT_ID") or error("BENCH_MERCHANT_ID is not set")
local run = tostring(os.time())

-- 1000 ends in 000, which the sandbox gateway approves; small so a run stays far below the
-- daily limit (the benchmark also raises DEFAULT_DAILY_LIMIT).
local body = string.format(
  '{"amount":1000,"merchantId":"%s","paymentMethod":"card","productName":"Bench latte"}',
  merchant
)

local threads = 0

-- Runs once per thread, in the main Lua state, before the threads start.
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0

function init(args)
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

function request()
  counter = counter + 1
  local key = string.format("bench-%s-%d-%d-%d", run, thread_id or 0, counter,
    math.random(0, 2147483646))
  return wrk.format("POST", "/api/v1/payments", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end
