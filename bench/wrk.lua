-- wrk request script of bench/run.py; BENCH_CASE picks the scenario (mcp, token, revoked).
local case = os.getenv("BENCH_CASE") or "mcp"
wrk.method = "POST"
if case == "mcp" then
  wrk.path = "/mcp"
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
  wrk.headers["content-type"] = "application/json"
  wrk.headers["accept"] = "application/json, text/event-stream"
else
  wrk.path = "/token"
  wrk.body = "grant_type=refresh_token&refresh_token=EXAMPLE_REFRESH_TOKEN"
  wrk.headers["content-type"] = "application/x-www-form-urlencoded"
  wrk.headers["authorization"] = "Basic RVhBTVBMRV9DTElFTlRfSUQ6RVhBTVBMRV9DTElFTlRfU0VDUkVU"
  if case == "revoked" then
    wrk.headers["x-bench-case"] = "revoked"
  end
end
