-- POSTs one fixed body to the URL and counts the answers by kind; prints one JSON line at the end.
-- Usage: wrk -s post.lua URL -- BODY_FILE CONTENT_TYPE [INFERENCE_HEADER_CONTENT_LENGTH]

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   wrk.method = "POST"
   wrk.body = file:read("*a")
   file:close()
   wrk.headers["Content-Type"] = args[2]
   if args[3] then  -- OIP binary tensors: where the JSON object ends
      wrk.headers["Inference-Header-Content-Length"] = args[3]
   end
   req = wrk.format()  -- built once: the default request() sends it as is, no per-request Lua
end

ok, overloaded, other = 0, 0, 0

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   elseif status == 503 and (headers["retry-after"] or headers["Retry-After"]) then
      overloaded = overloaded + 1  -- the queue bound answering as designed
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local counts = { ok = 0, overloaded = 0, other = 0 }
   for _, thread in ipairs(threads) do
      for name, _ in pairs(counts) do
         counts[name] = counts[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "ok": %d, "overloaded": %d, "other_status": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, counts.ok, counts.overloaded, counts.other,
      e.connect, e.read, e.write, e.timeout))
end
