"""Self-test of the replay harness's pure parts: fixture loading, policy generation, checks.

Run: python3 -m unittest discover -s tests/replay -p 'test_*.py'
(no Envoy, no network, no wasm needed).
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import Response, check  # noqa: E402
from fixtures import FixtureError, load_dir, parse_fixture  # noqa: E402
from policy import generate_policy  # noqa: E402

BASIC = "Basic RVhBTVBMRV9DTElFTlRfSUQ6RVhBTVBMRV9DTElFTlRfU0VDUkVU"
REDIRECT = "http%3A%2F%2F127.0.0.1%3A33418%2Fcallback"


def fixture(
    *,
    file: str = "f.json",
    index: int = 0,
    provider: str = "P",
    endpoint: str = "token",
    path: str = "/token",
    method: str = "POST",
    request_headers: dict | None = None,
    status: int | None = 400,
    response_headers: dict | None = None,
    body: str = '{"error":"invalid_client"}',
    kind: str = "invalid_client",
):
    doc = {
        "provider": provider,
        "endpoint": endpoint,
        "condition": "unknown_client",
        "request": {
            "method": method,
            "path": path,
            "headers": request_headers if request_headers is not None else {},
            "body": "grant_type=refresh_token",
        },
        "response": {
            "status": status,
            "headers": response_headers
            if response_headers is not None
            else {"content-type": "application/json"},
            "body": body,
        },
        "expect": {"kind": kind},
    }
    return parse_fixture(file, index, json.dumps(doc))


def resp(status: int, headers: list | None = None, body: bytes | str = b"") -> Response:
    if isinstance(body, str):
        body = body.encode()
    return Response(status, headers or [], body)


GOOD_401 = resp(
    401,
    [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("www-authenticate", 'Basic realm="oauth", error="invalid_client"'),
    ],
    '{"error":"invalid_client","error_description":"x"}',
)


class FixtureLoading(unittest.TestCase):
    def test_null_status_is_400_for_json_and_200_otherwise(self):
        self.assertEqual(fixture(status=None).status, 400)
        html = fixture(status=None, response_headers={"content-type": "text/html"}, body="<p>")
        self.assertEqual(html.status, 200)
        self.assertIsNone(html.recorded_status)

    def test_gzip_header_gzips_a_text_body(self):
        fx = fixture(
            response_headers={"content-type": "application/json", "content-encoding": "gzip"}
        )
        self.assertEqual(gzip.decompress(fx.response_body), b'{"error":"invalid_client"}')

    def test_list_header_values_repeat_and_framing_headers_are_dropped(self):
        fx = fixture(
            response_headers={"vary": ["origin", "accept"], "content-length": "999"},
        )
        self.assertEqual(fx.response_headers, [("vary", "origin"), ("vary", "accept")])

    def test_malformed_fixtures_name_the_field(self):
        cases = {
            "{": "not valid JSON",
            "[]": "top level must be an object",
            json.dumps({"provider": "P"}): "endpoint",
        }
        for text, want in cases.items():
            with self.subTest(text=text), self.assertRaisesRegex(FixtureError, want):
                parse_fixture("x.json", 0, text)
        with self.assertRaisesRegex(FixtureError, "request.method"):
            fixture(method="GET /x")
        with self.assertRaisesRegex(FixtureError, "response.status"):
            fixture(status=99)
        with self.assertRaisesRegex(FixtureError, "reserved"):
            fixture(request_headers={"X-Fixture-Id": "3"})

    def test_load_dir_keeps_every_file_in_sorted_order(self):
        with tempfile.TemporaryDirectory() as d:
            Path(d, "b.json").write_text("{oops")
            Path(d, "a.json").write_text(
                json.dumps(
                    {
                        "provider": "P",
                        "endpoint": "token",
                        "request": {"method": "POST", "path": "/t"},
                        "response": {"status": 400},
                        "expect": {"kind": "unchanged"},
                    }
                )
            )
            Path(d, "notes.txt").write_text("ignored: not *.json")
            loaded = load_dir(Path(d))
        self.assertEqual([f.file for f in loaded.fixtures], ["a.json"])
        self.assertEqual([(i, n) for i, n, _ in loaded.errors], [(1, "b.json")])
        self.assertEqual(loaded.total, 2)


class PolicyGeneration(unittest.TestCase):
    def test_one_provider_per_label_with_kinds_mapped(self):
        fixtures = [
            fixture(index=0, provider="Hydra", endpoint="token", path="/oauth2/token"),
            fixture(index=1, provider="Hydra", endpoint="revoke", path="/oauth2/revoke"),
            fixture(index=2, provider="Hydra", endpoint="authorize",
                    path=f"/oauth2/auth?client_id=x&redirect_uri={REDIRECT}", method="GET"),
            fixture(index=3, provider="Hydra", endpoint="register",
                    path="/oauth2/register/EXAMPLE_CLIENT_ID", method="GET"),
            fixture(index=4, provider="Hydra", endpoint="introspect", path="/oauth2/introspect"),
        ]
        policy, notes = generate_policy(fixtures)
        self.assertEqual(
            policy,
            {
                "version": 1,
                "providers": [
                    {
                        "name": "hydra",
                        "preset": "auto",
                        "endpoints": {
                            "token": ["/oauth2/token"],
                            "revocation": ["/oauth2/revoke"],
                            "registration": ["/oauth2/register/EXAMPLE_CLIENT_ID"],
                            "authorization": ["/oauth2/auth"],
                        },
                    }
                ],
            },
        )
        self.assertEqual(notes, [])  # introspect is a known non-target: no note

    def test_same_path_two_kinds_keeps_token_whatever_the_order(self):
        # Cloudflare serves revocation on its token endpoint; the revoke file sorts first.
        fixtures = [
            fixture(index=0, provider="Cloudflare", endpoint="revoke", path="/token"),
            fixture(index=1, provider="Cloudflare", endpoint="token", path="/token"),
        ]
        policy, notes = generate_policy(fixtures)
        self.assertEqual(policy["providers"][0]["endpoints"], {"token": ["/token"]})
        self.assertEqual(len(notes), 1)
        self.assertIn("kept token", notes[0])
        self.assertIn("revocation", notes[0])

    def test_priority_is_token_revocation_authorization_registration(self):
        kinds = [("register", "registration"), ("authorize", "authorization"),
                 ("revoke", "revocation"), ("token", "token")]
        for n in range(1, len(kinds) + 1):
            present = kinds[:n]
            fixtures = [
                fixture(index=i, provider=f"P{i}", endpoint=e, path="/same")
                for i, (e, _) in enumerate(present)
            ]
            policy, _ = generate_policy(fixtures)
            listed = [(p["name"], k) for p in policy["providers"] for k in p["endpoints"]]
            with self.subTest(kinds=[e for e, _ in present]):
                self.assertEqual(listed, [(f"p{n - 1}", present[-1][1])])

    def test_same_path_same_kind_two_providers_listed_once_under_the_first(self):
        fixtures = [
            fixture(index=0, provider="Google", path="/token"),
            fixture(index=1, provider="MCP SDK", path="/token"),
            fixture(index=2, provider="MCP SDK", path="/revoke", endpoint="revoke"),
        ]
        policy, notes = generate_policy(fixtures)
        self.assertEqual(
            [(p["name"], p["endpoints"]) for p in policy["providers"]],
            [("google", {"token": ["/token"]}), ("mcp-sdk", {"revocation": ["/revoke"]})],
        )
        self.assertTrue(any("listed once" in n for n in notes))

    def test_provider_left_without_endpoints_is_not_listed(self):
        fixtures = [
            fixture(index=0, provider="A", path="/token"),
            fixture(index=1, provider="B", path="/token"),
        ]
        policy, notes = generate_policy(fixtures)
        self.assertEqual([p["name"] for p in policy["providers"]], ["a"])
        self.assertTrue(any("'B' has no listable endpoint" in n for n in notes))

    def test_paths_outside_pchar_and_unknown_kinds_are_skipped_with_a_note(self):
        fixtures = [
            fixture(index=0, path="/t/{x}"),
            fixture(index=1, path="/t/%zz"),
            fixture(index=2, path="/t/*/token"),
            fixture(index=3, path="/userinfo", endpoint="userinfo"),
            fixture(index=4, path="/ok/%41:@!$&'()+,;=-._~"),
        ]
        policy, notes = generate_policy(fixtures)
        self.assertEqual(
            policy["providers"][0]["endpoints"], {"token": ["/ok/%41:@!$&'()+,;=-._~"]}
        )
        self.assertEqual(len(notes), 4)
        self.assertIn("outside RFC 3986 pchar", notes[0])
        self.assertIn("outside RFC 3986 pchar", notes[1])
        self.assertIn("wildcard", notes[2])
        self.assertIn("'userinfo' is unknown", notes[3])

    def test_provider_names_are_slugs_and_unique(self):
        fixtures = [
            fixture(index=0, provider="Ory Hydra (Fosite)", path="/a"),
            fixture(index=1, provider="ory hydra fosite", path="/b"),
        ]
        policy, _ = generate_policy(fixtures)
        self.assertEqual(
            [p["name"] for p in policy["providers"]], ["ory-hydra-fosite", "ory-hydra-fosite-2"]
        )


class InvalidClientCheck(unittest.TestCase):
    def test_passes_on_the_rfc_answer(self):
        fx = fixture(request_headers={"authorization": BASIC})
        self.assertEqual(check(fx, GOOD_401, resp(400, [], fx.response_body)), [])

    def test_any_scheme_when_the_client_did_not_use_basic(self):
        fx = fixture()
        a = resp(401, [("cache-control", "no-store"), ("www-authenticate", 'Bearer realm="x"')],
                 '{"error":"invalid_client"}')
        self.assertEqual(check(fx, a, resp(400, [], fx.response_body)), [])

    def test_bearer_challenge_after_basic_fails(self):
        fx = fixture(request_headers={"Authorization": BASIC})
        a = resp(401, [("cache-control", "no-store"), ("www-authenticate", 'Bearer realm="x"')],
                 '{"error":"invalid_client"}')
        reasons = check(fx, a, resp(400, [], fx.response_body))
        self.assertEqual(len(reasons), 1)
        self.assertIn("request used Basic", reasons[0])

    def test_each_missing_part_fails(self):
        fx = fixture()
        b = resp(400, [], fx.response_body)
        cases = {
            "status 400": resp(400, GOOD_401.headers, GOOD_401.body),
            "not JSON": resp(401, GOOD_401.headers, "error=invalid_client"),
            "error 'invalid_request'": resp(401, GOOD_401.headers, '{"error":"invalid_request"}'),
            "error member absent": resp(401, GOOD_401.headers, '{"errorCode":"invalid_client"}'),
            "lacks no-store": resp(
                401,
                [("cache-control", "no-cache, max-age=0"), ("www-authenticate", "Basic")],
                GOOD_401.body,
            ),
            "Cache-Control absent": resp(401, [("www-authenticate", "Basic")], GOOD_401.body),
            "WWW-Authenticate absent": resp(401, [("cache-control", "no-store")], GOOD_401.body),
        }
        for want, a in cases.items():
            with self.subTest(want=want):
                reasons = check(fx, a, b)
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(want, reasons[0])

    def test_gzip_body_is_decoded_before_parsing(self):
        fx = fixture()
        headers = GOOD_401.headers + [("content-encoding", "gzip")]
        a = resp(401, headers, gzip.compress(GOOD_401.body))
        self.assertEqual(check(fx, a, resp(400, [], fx.response_body)), [])


class OtherKinds(unittest.TestCase):
    def test_not_invalid_client(self):
        fx = fixture(kind="not_invalid_client", body='{"error":"invalid_grant"}')
        b = resp(400, [], fx.response_body)
        self.assertEqual(check(fx, resp(400, [], '{"error":"invalid_grant"}'), b), [])
        self.assertEqual(check(fx, resp(403, [], '{"errorCode":"x"}'), b), [])
        for a, want in (
            (resp(401, [], '{"error":"invalid_client"}'), "error is 'invalid_client'"),
            (resp(400, [], "<html>"), "not JSON"),
            (resp(200, [], '{"error":"invalid_grant"}'), "want 4xx"),
            (resp(400, [], '["invalid_grant"]'), "not an object"),
        ):
            with self.subTest(want=want):
                reasons = check(fx, a, b)
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(want, reasons[0])

    def test_invalid_grant(self):
        fx = fixture(kind="invalid_grant", status=200, body='{"error":"bad_refresh_token"}')
        b = resp(200, [], fx.response_body)
        self.assertEqual(check(fx, resp(400, [], '{"error":"invalid_grant"}'), b), [])
        for a, want in (
            (resp(200, [], '{"error":"invalid_grant"}'), "status 200"),
            (resp(400, [], '{"error":"bad_refresh_token"}'), "error 'bad_refresh_token'"),
            (resp(400, [], "error=invalid_grant"), "not JSON"),
        ):
            with self.subTest(want=want):
                reasons = check(fx, a, b)
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(want, reasons[0])

    def test_unchanged_ignores_only_volatile_headers(self):
        fx = fixture(kind="unchanged", status=401)
        base = [("content-type", "application/json"), ("content-length", "26")]
        b = resp(401, base + [("date", "Mon"), ("server", "envoy"),
                              ("x-envoy-upstream-service-time", "1")], fx.response_body)
        same = resp(401, base + [("date", "Tue"), ("x-envoy-upstream-service-time", "9")],
                    fx.response_body)
        self.assertEqual(check(fx, same, b), [])
        for a, want in (
            (resp(400, base, fx.response_body), "status 401 -> 400"),
            (
                resp(401, base + [("x-extra", "1")], fx.response_body),
                "with filter only [('x-extra', '1')]",
            ),
            (resp(401, list(reversed(base)), fx.response_body), "different order"),
            (resp(401, base, fx.response_body + b" "), "body differs"),
        ):
            with self.subTest(want=want):
                reasons = check(fx, a, b)
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(want, reasons[0])

    def test_no_client_redirect(self):
        fx = fixture(
            kind="no_client_redirect", endpoint="authorize", method="GET",
            path=f"/authorize?client_id=x&redirect_uri={REDIRECT}&state=s",
            status=302, response_headers={"location": "https://idp.example/error"}, body="",
        )
        b = resp(302, [("location", "https://idp.example/error")])
        self.assertEqual(check(fx, b, b), [])  # a redirect elsewhere is fine
        page = resp(200, [("content-type", "text/html")], "<p>gone</p>")
        self.assertEqual(check(fx, page, b), [])
        for a, want in (
            (
                resp(302, [("location", "http://127.0.0.1:33418/callback?error=invalid_client")]),
                "redirect to",
            ),
            (resp(303, [("Location", "HTTP://127.0.0.1:33418/callback#x")]), "redirect to"),
            (
                resp(200, [("location", "http://127.0.0.1:33418/callback")]),
                "status 200 with a Location",
            ),
        ):
            with self.subTest(location=a.headers):
                reasons = check(fx, a, b)
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(want, reasons[0])

    def test_no_client_redirect_needs_a_redirect_uri(self):
        fx = fixture(kind="no_client_redirect", method="GET", path="/authorize?client_id=x",
                     status=400, body="{}")
        self.assertIn("no redirect_uri", check(fx, resp(400), resp(400, [], b"{}"))[0])


class RunWideChecks(unittest.TestCase):
    def test_envoy_made_5xx_fails_unless_the_provider_sent_it(self):
        fx = fixture(kind="unchanged", status=400)
        b = resp(400, [], fx.response_body)
        reasons = check(fx, resp(503, [], "no healthy upstream"), b)
        self.assertTrue(any("Envoy-generated 503" in r for r in reasons), reasons)

        recorded = fixture(kind="unchanged", status=503, body="down")
        b503 = resp(503, [], b"down")
        self.assertEqual(check(recorded, b503, b503), [])

    def test_broken_baseline_is_reported(self):
        fx = fixture(kind="unchanged", status=400)
        b = resp(502, [], "bad gateway")
        reasons = check(fx, b, b)
        broken = [r for r in reasons if r.startswith("baseline without filter broken")]
        self.assertTrue(broken, reasons)

    def test_unknown_kind_is_a_failure_naming_it(self):
        fx = fixture(kind="rewritten_somehow")
        reasons = check(fx, GOOD_401, resp(400, [], fx.response_body))
        self.assertEqual(len(reasons), 1)
        self.assertIn("unknown expect.kind 'rewritten_somehow'", reasons[0])


if __name__ == "__main__":
    unittest.main()
