-- wrk script: POST unique playback events to /webhooks/genesys, BATCH per request.
-- Each thread numbers its own events, so every event is new to the ledger.
local batch = tonumber(os.getenv("BATCH") or "1")
local auth = os.getenv("AUTH")
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

local function event(n)
  local pid = string.format("bench-%d-%d-%d", tid, n, math.random(1, 1000000000))
  return string.format(
    '{"topicName":"v2.conversations.conv-%d.playback","version":"2","eventBody":' ..
    '{"id":"%s-e","eventType":"conversation:voice:playback","conversationId":"conv-%d",' ..
    '"playbackId":"%s","state":"completed","duration":12000,"sequence":3,' ..
    '"mediaUrl":"https://media.example.com/welcome.wav","timestamp":"2026-11-24T02:28:03.123Z"},' ..
    '"metadata":{"CorrelationId":"%s"}}', n % 1000, pid, n % 1000, pid, pid)
end

function init(args)
  math.randomseed(os.time() + tid * 7919)
end

function request()
  local body
  if batch == 1 then
    counter = counter + 1
    body = event(counter)
  else
    local items = {}
    for i = 1, batch do
      counter = counter + 1
      items[i] = event(counter)
    end
    body = "[" .. table.concat(items, ",") .. "]"
  end
  return wrk.format("POST", "/webhooks/genesys",
    {["Content-Type"] = "application/json", ["Authorization"] = "Basic " .. auth}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
