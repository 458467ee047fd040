-- The benchmark's Lua baseline: the same checks and the same rewrite as mcp-oauth-guard with
-- the bench policy (generic provider, token and revocation endpoints at /token and /revoke),
-- written the way a careful Envoy Lua filter would be: one read of :method and :path per
-- request, nothing stored and no body touched unless the request is a target, the body read
-- only for a small 2xx/4xx JSON, form or untyped answer, and string scanning instead of a
-- JSON parser (Envoy's Lua has none).
--
-- Rewrite: a "client is gone" answer (error invalid_client, or invalid_request /
-- unauthorized_client whose description says the client is unknown and does not talk about
-- the grant) becomes the RFC 6749 section 5.2 401 invalid_client answer, byte-identical to
-- the filter's. invalid_grant, 5xx, 3xx and everything else pass untouched. Out of scope here
-- (the filter does them, the benchmark does not exercise them): provider envelopes such as
-- Okta's errorCode, 2xx answers that carry an error, the authorization endpoint, gzip.

local CAP = 65536
local DESCRIPTION = "Client authentication failed: the client is unknown to the authorization "
  .. "server (deleted, expired or never registered). Register the client again."
local BODY = '{"error":"invalid_client","error_description":"' .. DESCRIPTION .. '"}'
local TARGETS = { ["/token"] = true, ["/revoke"] = true }
local SUBJECTS = { "client", "application", "aadsts700016" }
local GONE = { "does not exist", "doesn't exist", "not found", "unknown", "not registered",
  "no longer exist", "been deleted", "was deleted", "invalid client",
  "invalid value for 'client_id'", "aadsts700016" }
local ABOUT_THE_GRANT = { "refresh token", "refresh_token", "grant", "authorization code",
  "code_verifier", "code verifier", "redirect", "scope" }

local function any_in(text, words)
  for _, w in ipairs(words) do
    if string.find(text, w, 1, true) then
      return true
    end
  end
  return false
end

local function says_client_is_gone(description)
  if description == nil then
    return false
  end
  local text = string.lower(description)
  return any_in(text, SUBJECTS) and any_in(text, GONE) and not any_in(text, ABOUT_THE_GRANT)
end

-- The provider's error code and description, from JSON or form bytes; nil when absent.
local function read_error(body)
  local code = string.match(body, '"error"%s*:%s*"([^"]*)"')
  local description
  if code ~= nil then
    description = string.match(body, '"error_description"%s*:%s*"([^"]*)"')
  else
    code = string.match(body, "^error=([^&]*)") or string.match(body, "&error=([^&]*)")
    description = string.match(body, "error_description=([^&]*)")
    if description ~= nil then
      description = string.gsub(description, "+", " ")
    end
  end
  if code == nil then
    return nil, nil
  end
  return string.lower(code), description
end

function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") ~= "POST" then
    return
  end
  local path = headers:get(":path")
  local q = string.find(path, "?", 1, true)
  if q ~= nil then
    path = string.sub(path, 1, q - 1)
  end
  if TARGETS[path] then
    local auth = headers:get("authorization")
    local scheme = "Basic"
    if auth ~= nil then
      local s = string.match(auth, "^%s*([!#$%%&'*+.^_`|~%w-]+)")
      if s ~= nil and string.lower(s) ~= "basic" and #s <= 32 then
        scheme = s
      end
    end
    local meta = handle:streamInfo():dynamicMetadata()
    meta:set("mcp_oauth_guard", "scheme", scheme)
    meta:set("mcp_oauth_guard", "path", path)
  end
end

function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("mcp_oauth_guard")
  if meta == nil then
    return
  end
  local headers = handle:headers()
  local status = tonumber(headers:get(":status")) or 0
  if not ((status >= 200 and status < 300) or (status >= 400 and status < 500)) then
    return
  end
  if status == 204 or status == 205 then
    return
  end
  -- RFC 7009 section 2.2: a revocation endpoint's 2xx is never rewritten.
  if meta["path"] == "/revoke" and status < 300 then
    return
  end
  local encoding = headers:get("content-encoding")
  if encoding ~= nil and encoding ~= "" and string.lower(encoding) ~= "identity" then
    return
  end
  local ctype = string.lower(headers:get("content-type") or "")
  local essence = string.match(ctype, "^%s*([^;%s]*)") or ""
  if not (essence == "" or essence == "application/json" or essence == "text/json"
      or essence == "text/plain" or essence == "application/x-www-form-urlencoded"
      or string.sub(essence, -5) == "+json") then
    return
  end
  local length = headers:get("content-length")
  if length ~= nil and (tonumber(length) == nil or tonumber(length) > CAP) then
    return
  end

  local body = handle:body()
  if body == nil then
    return
  end
  local size = body:length()
  if size == 0 or size > CAP then
    return
  end
  local text = body:getBytes(0, size)
  local code, description = read_error(text)
  if code == nil or string.find(text, '"access_token"', 1, true) then
    return
  end
  local gone = code == "invalid_client"
    or ((code == "invalid_request" or code == "unauthorized_client")
      and says_client_is_gone(description))
  if not gone then
    return
  end

  -- The header map read before the body wait is not the one Envoy sends: take it again.
  headers = handle:headers()
  body:setBytes(BODY)
  headers:replace(":status", "401")
  headers:replace("content-type", "application/json")
  headers:replace("cache-control", "no-store")
  headers:replace("pragma", "no-cache")
  headers:replace("www-authenticate",
    meta["scheme"] .. ' realm="oauth", error="invalid_client"')
  headers:replace("content-length", tostring(#BODY))
  headers:remove("etag")
  headers:remove("content-encoding")
end
