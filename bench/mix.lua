-- wrk script: the request mix of the RSS phase, by a counter over each block of 100 requests:
--   85 cached reads    GET /api/v1/payments/<BENCH_PAYMENT_ID>
--   10 health checks   GET /health                        (positions 5, 15, ..., 95)
--    4 history pages   GET /api/v1/payments?limit=20      (positions 12, 37, 62, 87)
--    1 create          POST /api/v1/payments, a new Idempotency-Key each (position 99)
-- spread through the block rather than in runs, so no stretch of the run is all one kind.
--
-- Reads BENCH_TOKEN, BENCH_PAYMENT_ID and BENCH_MERCHANT_ID from the environment. The create's
-- key is unique across wrk runs and threads as in create.lua ("mix-<run>-<thread>-<n>-<rand>").
-- The service runs on an in-memory MongoDB stand-in, so every create stays in its memory:
-- creates are kept to 1 in 100 so that the RSS measured is the server's, not the data's.

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local payment = os.getenv("BENCH_PAYMENT_ID") or error("BENCH_PAYMENT_ID is not set")
local merchant = os.getenv("BENCH_MERCHANT_ID") or error("BENCH_MERCHANT_ID is not set")
local run = tostring(os.time())

local body = string.format(
  '{"amount":1000,"merchantId":"%s","paymentMethod":"card","productName":"Bench mix"}',
  merchant
)
local auth = { ["Authorization"] = "Bearer " .. token }

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local cached_read, health, history

function init(args)
  math.randomseed(os.time() + (thread_id or 0) * 7919)
  -- The three GETs never change: formatted once per thread.
  cached_read = wrk.format("GET", "/api/v1/payments/" .. payment, auth)
  health = wrk.format("GET", "/health")
  history = wrk.format("GET", "/api/v1/payments?limit=20", auth)
end

function request()
  local i = counter % 100
  counter = counter + 1
  if i == 99 then
    local key = string.format("mix-%s-%d-%d-%d", run, thread_id or 0, counter,
      math.random(0, 2147483646))
    return wrk.format("POST", "/api/v1/payments", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = key,
    }, body)
  elseif i % 25 == 12 then
    return history
  elseif i % 10 == 5 then
    return health
  end
  return cached_read
end
