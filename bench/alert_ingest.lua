-- wrk script for bench/alert_ingest.py: POSTs PagerDuty-style trigger events, or
-- Alertmanager notifications of one new alert each.
--
-- Set by the bench, through the environment:
--   ALERT_BENCH_FORMAT    pagerduty (default) or alertmanager
--   ALERT_BENCH_RUN       a run id; each wrk thread makes dedup keys "<run>-t<n>-<count>"
--   ALERT_BENCH_KEY       one fixed dedup key for every event (the storm) instead
--   ALERT_BENCH_SEVERITY  the events' severity (default error)
--   ALERT_BENCH_LIMIT     stop after this many responses (0: run for -d; one thread) and
--   ALERT_BENCH_MARK      then write this file
--   ALERT_BENCH_OUT       a directory: each thread writes the dedup keys Firebreak accepted
--                         (one a line), so the bench can check every one was stored
-- done() prints "ACCEPTED <2xx responses> RESPONSES <all responses>".

local threads = {}

function setup(thread)
  thread:set("prefix", string.format("%s-t%d-", os.getenv("ALERT_BENCH_RUN") or "run", #threads))
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  responses = 0
  accepted = 0
  fixed = os.getenv("ALERT_BENCH_KEY")
  severity = os.getenv("ALERT_BENCH_SEVERITY") or "error"
  format = os.getenv("ALERT_BENCH_FORMAT") or "pagerduty"
  limit = tonumber(os.getenv("ALERT_BENCH_LIMIT") or "0")
  local out = os.getenv("ALERT_BENCH_OUT")
  if out and out ~= "" then
    keys = io.open(out .. "/" .. prefix .. "keys", "w")
    -- Buffered: a write per response was the client's own syscall, taking CPU from the
    -- server it measures. wrk never closes a thread's files; they are flushed when it
    -- exits, and the bench reads them after that (a lost key shows as not stored).
    keys:setvbuf("full")
  end
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  sent = sent + 1
  local key = fixed or (prefix .. sent)
  if format == "alertmanager" then
    -- One group, each notification bringing one new alert (its fingerprint the key).
    local body = string.format(
      '{"version": "4", "groupKey": "{}:{alertname=\\"BenchAlert\\"}", "status": "firing", '
        .. '"receiver": "firebreak", "groupLabels": {"alertname": "BenchAlert"}, '
        .. '"alerts": [{"status": "firing", "labels": {"alertname": "BenchAlert", '
        .. '"instance": "%s", "severity": "%s"}, "annotations": {"summary": "[bench] %s"}, '
        .. '"startsAt": "2026-11-22T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", '
        .. '"generatorURL": "http://prometheus.bench/graph", "fingerprint": "%s"}]}',
      key, severity, key, key
    )
    return wrk.format("POST", nil, headers, body)
  end
  local body = string.format(
    '{"event_action": "trigger", "dedup_key": "%s", "payload": '
      .. '{"summary": "[bench] %s", "source": "bench", "severity": "%s"}}',
    key, key, severity
  )
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  responses = responses + 1
  if status == 200 or status == 202 then
    accepted = accepted + 1
    if keys then
      local key = body:match('"dedup_key": "([^"]+)"')
      if key then keys:write(key, "\n") end
    end
  end
  if limit > 0 and responses == limit then
    -- wrk's clock runs until -d even after its threads stop: the bench takes the time
    -- from this file's mtime, then ends wrk.
    wrk.thread:stop()
    local mark = io.open(os.getenv("ALERT_BENCH_MARK"), "w")
    mark:write(responses, "\n")
    mark:close()
  end
end

function done(summary, latency, requests)
  local a, r = 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    r = r + thread:get("responses")
  end
  io.write(string.format("ACCEPTED %d RESPONSES %d\n", a, r))
end
