-- wrk script of deploy/local/wrk-bench: POST /api/v1/notifications/ with the key and recipient in WRK_KEY and
-- WRK_USER, a request_id of its own per request (a repeated one would be answered from the first as a replay),
-- and the count of each status at the end.
local key = os.getenv("WRK_KEY")
local user = os.getenv("WRK_USER")
local prefix = os.getenv("WRK_PREFIX") or "wrk"
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
    thread_id = thread_id + 1
    thread:set("tid", thread_id)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
end

request = function()
    counter = counter + 1
    local body = string.format(
        '{"notification_type":"email","user_id":"%s","template_code":"welcome_email",' ..
        '"variables":{"name":"Ada","link":"https://example.com/start"},"request_id":"%s-%d-%d"}',
        user, prefix, tid, counter)
    return wrk.format("POST", "/api/v1/notifications/", {
        ["Authorization"] = "Bearer " .. key,
        ["Content-Type"] = "application/json",
    }, body)
end

response = function(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
    local totals = {}
    for _, thread in ipairs(threads) do
        local counts = thread:get("statuses")
        for status, n in pairs(counts) do totals[status] = (totals[status] or 0) + n end
    end
    local parts = {}
    for status, n in pairs(totals) do table.insert(parts, string.format("%d: %d", status, n)) end
    table.sort(parts)
    io.write(string.format("statuses %s\n", table.concat(parts, ", ")))
    io.write(string.format("latency p50 %.1f ms, p99 %.1f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
