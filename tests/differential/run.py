#!/usr/bin/env python3
"""Differential test: the same generated upstream answers through Envoy with and without the
mcp-oauth-guard filter, compared byte for byte (ENVOY-NOTES §5.3, R7; invariants I1-I5).

  tests/differential/run.py                      CI form: 300 generated exchanges (+ fixed cases)
  tests/differential/run.py --full               3000 exchanges, 8 MiB over-cap and 10 MiB gzip bombs
  tests/differential/run.py --count N --seed S   any size, any seed (same seed = same cases)
  tests/differential/run.py --upstream-h2         Envoy reaches the upstream over HTTP/2 (relay listener)
  tests/differential/run.py --skip bad_crc,...    leave out named known failures (README.md)
  tests/differential/run.py --seed S --count N --only 17,42 --verbose   re-run single cases

One Envoy (.venv, --concurrency 1) with two listeners built by tests/replay/replay.py: A has the
filter on every route (policy targets /token, /revoke, /register, /authorize; default body cap),
B has no filter. Both route to one raw-socket Python upstream that writes each case's answer
exactly (Content-Length, chunked with chosen splits down to 1-byte chunks, trailers, close-
delimited, paced SSE). Each case goes to B, then to A, over HTTP/1.1 (raw socket client) or
HTTP/2 (curl --http2-prior-knowledge). Compared: status, headers in order (minus date, server,
x-envoy-upstream-service-time), body sha256, trailers, framing. Expected rewrites (oracle in
cases.py) must equal the filter's documented reply exactly. Also checked: B returns what the
upstream sent, both access logs say via_upstream with no response flags (no Envoy-generated 5xx,
no resets), no rs_too_large, no wasm VM failure or reload, `response.host_refused` = 0, and the
filter's rewrite counters equal the expected rewrites.

Everything listens on 127.0.0.1, on kernel-chosen ports (the --upstream-h2 relay on a port
probed free just before); Envoy and the upstream are stopped at the
end, also on failure or interrupt. Exit 0 only when there is no unexpected difference; 1
otherwise; 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "replay"))

import replay  # noqa: E402  (tests/replay/replay.py: Envoy config and startup helpers)
from cases import POLICY, REPLACED_HEADERS, Case, expected_reply, generate  # noqa: E402
from wire import (Answer, RawUpstream, Received, curl_h2_available, h1_request,  # noqa: E402
                  h2_request, module_id)

VOLATILE = frozenset({"date", "server", "x-envoy-upstream-service-time"})
BUFFER_LIMIT = 32768  # envoy/envoy.yaml per_connection_buffer_limit_bytes (listeners, clusters)
CASE_HEADER = replay.FIXTURE_ID_HEADER  # the replay access log records it


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def build_config(upstream_port: int, filter_a: dict | None, tmp: Path,
                 relay_port: int | None = None) -> dict:
    """tests/replay's two-listener bootstrap, plus trailers (HTTP/1 drops them unless enabled)
    and the reference config's 32 KiB per-connection buffer limits.

    With `relay_port`, A and B reach the upstream over HTTP/2: their cluster speaks h2c to a
    third listener in the same Envoy ("relay", no filter), which forwards over HTTP/1.1 (with
    trailers) to the raw upstream. A and B then see an HTTP/2 upstream, whose trailers Envoy
    always delivers, with no HTTP/1 trailer option on their own path."""
    cfg = replay.envoy_config(upstream_port, filter_a, tmp)
    h1_trailers = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
        }
    }
    res = cfg["static_resources"]
    for lst in res["listeners"]:
        lst["per_connection_buffer_limit_bytes"] = BUFFER_LIMIT
        hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_protocol_options"] = {"enable_trailers": True}
    for cl in res["clusters"]:
        cl["per_connection_buffer_limit_bytes"] = BUFFER_LIMIT
        cl["typed_extension_protocol_options"] = h1_trailers
    if relay_port is not None:
        raw = json.loads(json.dumps(res["clusters"][0]))
        raw["name"] = raw["load_assignment"]["cluster_name"] = "raw_upstream"
        relay = replay.listener("relay", [], tmp / "access-relay.log")
        relay["address"]["socket_address"]["port_value"] = relay_port
        relay["per_connection_buffer_limit_bytes"] = BUFFER_LIMIT
        hcm = relay["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"] = "raw_upstream"
        hcm["http_protocol_options"] = {"enable_trailers": True}
        h2 = res["clusters"][0]
        h2["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"] = relay_port
        h2["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
        for lst in res["listeners"]:  # only A and B keep the HTTP/1 trailer option off
            if lst["name"] in (replay.LISTENER_A, replay.LISTENER_B):
                lst["filter_chains"][0]["filters"][0]["typed_config"].pop("http_protocol_options")
        res["listeners"].append(relay)
        res["clusters"].append(raw)
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(envoy: replay.Envoy) -> dict[str, int]:
    status, body = envoy.admin_get("/stats")
    out = {}
    for line in body.decode(errors="replace").splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


# ---------------------------------------------------------------------------------------------
# Comparison


def visible(r: Received) -> list[tuple[str, str]]:
    return [(k, v) for k, v in r.headers if k not in VOLATILE]


def compare(case: Case, a: Received, b: Received) -> tuple[str, list[str]]:
    """(outcome, reasons): outcome is identical | rewrite | unexpected."""
    reasons = []
    if b.error:
        reasons.append(f"without filter: transport error {b.error}")
    if a.error:
        reasons.append(f"with filter: transport error {a.error}")
    if reasons:
        return "unexpected", reasons
    # The baseline must be what the upstream sent, or the comparison proves nothing.
    ans = case.answer
    if b.status != ans.status:
        reasons.append(f"baseline broken: without filter status {b.status}, upstream sent {ans.status}")
    elif b.framing != "none" and case.method != "HEAD" and b.body != ans.body:
        reasons.append(f"baseline broken: without filter body sha {sha(b.body)} len {len(b.body)}, "
                       f"upstream sent sha {sha(ans.body)} len {len(ans.body)}")
    if reasons:
        return "unexpected", reasons

    if case.expect == "identical":
        if a.status != b.status:
            reasons.append(f"status {b.status} -> {a.status}")
        va, vb = visible(a), visible(b)
        if va != vb:
            removed = [h for h in vb if h not in va]
            added = [h for h in va if h not in vb]
            reasons.append(f"headers differ: removed {removed} added {added}"
                           + ("" if removed or added else " (order only)"))
        if a.body != b.body:
            reasons.append(f"body sha {sha(b.body)} len {len(b.body)} -> sha {sha(a.body)} "
                           f"len {len(a.body)}")
        if a.trailers != b.trailers:
            reasons.append(f"trailers {b.trailers} -> {a.trailers}")
        if a.framing != b.framing:
            reasons.append(f"framing {b.framing} -> {a.framing}")
        return ("identical", []) if not reasons else ("unexpected", reasons)

    # An expected rewrite: exactly the filter's reply, with every other upstream header kept.
    exp_status, exp_headers, exp_body = expected_reply(case)
    reply_names = {k for k, _ in exp_headers}
    want = [h for h in visible(b) if h[0] not in REPLACED_HEADERS and h[0] not in reply_names]
    want += exp_headers + [("content-length", str(len(exp_body)))]
    if a.status != exp_status:
        reasons.append(f"expected {case.expect}: status {b.status} -> {a.status}, want {exp_status}")
    if sorted(visible(a)) != sorted(want):
        missing = [h for h in want if h not in visible(a)]
        extra = [h for h in visible(a) if h not in want]
        reasons.append(f"expected {case.expect}: headers missing {missing} extra {extra}")
    if a.body != exp_body:
        reasons.append(f"expected {case.expect}: body {a.body[:120]!r} (len {len(a.body)}), "
                       f"want {exp_body[:120]!r} (len {len(exp_body)})")
    # With no body to replace (an empty body ended by trailers), the upstream's trailers go on
    # after the replaced head: only status and headers could change.
    if a.trailers and case.expect != "stale_page_headers_only":
        reasons.append(f"expected {case.expect}: trailers after the replaced body {a.trailers}")
    return ("rewrite", []) if not reasons else ("unexpected", reasons)


# ---------------------------------------------------------------------------------------------
# Reporting


def describe(case: Case) -> str:
    ans = case.answer
    pieces = ans.pieces
    if len(pieces) > 12:
        c = Counter(pieces)
        pieces_s = f"{len(pieces)} pieces ({', '.join(f'{n}x{s}B' for s, n in c.most_common(4))}...)"
    else:
        pieces_s = str(pieces)
    body = ans.body
    preview = body[:160].decode("latin-1").encode("unicode_escape").decode()
    lines = [
        f"    request : {case.proto} {case.method} {case.path} headers={case.req_headers}"
        + (" (chunked request body)" if case.chunked_request else "")
        + f" body={case.req_body[:80]!r}",
        f"    upstream: {ans.status} headers={ans.headers} framing={ans.framing} "
        f"pieces={pieces_s} trailers={ans.trailers} pause={ans.pause_s}",
        f"    body    : {len(body)} B sha {sha(body)}: {preview}{'...' if len(body) > 160 else ''}",
    ]
    return "\n".join(lines)


def show(label: str, r: Received) -> str:
    return (f"    {label}: {r.status} framing={r.framing} headers={visible(r)} "
            f"body={len(r.body)} B sha {sha(r.body)} trailers={r.trailers}"
            + (f" error={r.error}" if r.error else ""))


def access_log(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out.setdefault(str(rec.get("fixture")), []).append(rec)
    except OSError:
        pass
    return out


# ---------------------------------------------------------------------------------------------
# The run


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests/differential/run.py",
                                description="Differential test: Envoy with vs without the filter.")
    p.add_argument("--count", type=int, help="generated exchanges (default 300; 3000 with --full)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--full", action="store_true",
                   help="also 8 MiB over-cap answers and 10 MiB gzip bombs; default count 3000")
    p.add_argument("--only", help="comma-separated case ids to run (same --seed/--count/--full)")
    p.add_argument("--skip", action="append", default=[], metavar="TEXT[,TEXT...]",
                   help="leave out cases whose label contains TEXT (named skips, listed in the "
                        "output; README.md says which known failures they are)")
    p.add_argument("--no-h2", action="store_true", help="HTTP/1.1 only between client and Envoy")
    p.add_argument("--upstream-h2", action="store_true",
                   help="Envoy reaches the upstream over HTTP/2 (through a relay listener)")
    p.add_argument("--no-filter-control", action="store_true",
                   help="listener A without the filter: expected rewrites must show as failures")
    p.add_argument("--verbose", action="store_true", help="one line per exchange")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs)")
    p.add_argument("--envoy", type=Path, default=replay.DEFAULT_ENVOY)
    p.add_argument("--wasm", type=Path, default=replay.DEFAULT_WASM)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    count = args.count if args.count is not None else (3000 if args.full else 300)
    why_no_h2 = "--no-h2" if args.no_h2 else curl_h2_available()
    if why_no_h2:
        print(f"note: HTTP/2 not exercised: {why_no_h2}", file=sys.stderr)
    cases = generate(count, args.seed, h2_ok=not why_no_h2, full=args.full)
    if args.only:
        wanted = {int(x) for x in args.only.split(",")}
        cases = [c for c in cases if c.id in wanted]
    skips = [t for arg in args.skip for t in arg.split(",") if t]
    skipped = Counter()
    if skips:
        kept = []
        for c in cases:
            hit = next((t for t in skips if t in c.label), None)
            if hit:
                skipped[hit] += 1
            else:
                kept.append(c)
        cases = kept
    by_id = {str(c.id): c for c in cases}

    if not os.access(args.envoy, os.X_OK):
        print(f"error: Envoy {args.envoy} not found (scripts/bootstrap.sh)", file=sys.stderr)
        return 2
    if args.no_filter_control:
        print("note: --no-filter-control: A has NO filter; expected rewrites will fail", file=sys.stderr)
        filter_a = None
    elif not args.wasm.is_file():
        print(f"error: wasm module {args.wasm} not found", file=sys.stderr)
        return 2
    else:
        filter_a = replay.wasm_filter(POLICY, args.wasm.resolve())

    def answer_for(method: str, target: str, headers: dict, body: bytes) -> Answer:
        case = by_id.get(headers.get(CASE_HEADER, ""))
        if case is None:
            return Answer(599, [("Content-Type", "text/plain")], b"no such case\n")
        return case.answer

    module_before = module_id(args.wasm)
    tmp = Path(tempfile.mkdtemp(prefix="mcp-oauth-guard-diff-"))
    (tmp / "policy.yaml").write_text(POLICY)
    with ExitStack() as stack:
        if args.keep:
            stack.callback(print, f"note: kept {tmp}", file=sys.stderr)
        else:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        upstream = RawUpstream(answer_for)
        stack.callback(upstream.stop)
        try:
            # Envoy is forked before the upstream's threads exist.
            relay = free_port() if args.upstream_h2 else None
            ports = replay.start_envoy(args.envoy,
                                       build_config(upstream.port, filter_a, tmp, relay),
                                       tmp, stack)
        except replay.StartupError as exc:
            print(f"error: Envoy startup failed: {exc}\n{replay.log_tail(tmp / 'envoy.log')}",
                  file=sys.stderr)
            return 2
        # start_envoy keeps its process handle on `stack`; admin queries need only the address.
        envoy = replay.Envoy(proc=None, admin=(tmp / "admin-address").read_text().strip())  # type: ignore[arg-type]
        upstream.start()
        before = stats(envoy)

        work = tmp / "h2"
        work.mkdir()
        port_a, port_b = ports[replay.LISTENER_A], ports[replay.LISTENER_B]
        tally = Counter()
        by_label = Counter()
        unexpected = []
        started = time.monotonic()
        for case in cases:
            headers = case.req_headers + [(CASE_HEADER, str(case.id))]
            if case.proto == "h2":
                b = h2_request(port_b, case.method, case.path, headers, case.req_body, str(work))
                a = h2_request(port_a, case.method, case.path, headers, case.req_body, str(work))
            else:
                b = h1_request(port_b, case.method, case.path, headers, case.req_body,
                               chunked_request=case.chunked_request)
                a = h1_request(port_a, case.method, case.path, headers, case.req_body,
                               chunked_request=case.chunked_request)
            outcome, reasons = compare(case, a, b)
            tally[outcome] += 1
            tally[f"expect:{case.expect}"] += 1
            tally[f"proto:{case.proto}"] += 1
            by_label[case.label.split("/")[0]] += 1
            if args.verbose:
                print(f"{outcome.upper():10} #{case.id} {case.proto} {case.method} {case.path} "
                      f"{case.label} expect={case.expect} {b.status}->{a.status}"
                      f" trailers={len(b.trailers)}->{len(a.trailers)}", flush=True)
            if reasons:
                unexpected.append((case, a, b, reasons))
        elapsed = time.monotonic() - started

        # Envoy's own view: access logs, stats, log lines.
        deadline = time.monotonic() + 5  # access logs are flushed every 100 ms
        while True:
            logs = {"with filter": access_log(tmp / "access-A.log"),
                    "without filter": access_log(tmp / "access-B.log")}
            if time.monotonic() > deadline or all(
                    sum(map(len, log.values())) >= len(cases) for log in logs.values()):
                break
            time.sleep(0.2)
        time.sleep(0.2)  # and nothing more arrives
        logs = {"with filter": access_log(tmp / "access-A.log"),
                "without filter": access_log(tmp / "access-B.log")}
        envoy_side = []
        for case in cases:
            for side, log in logs.items():
                recs = log.get(str(case.id), [])
                if len(recs) != 1:
                    envoy_side.append((case, f"{side}: {len(recs)} access-log records"))
                    continue
                rec = recs[0]
                if rec.get("details") != "via_upstream" or rec.get("flags") not in ("-", None):
                    envoy_side.append((case, f"{side}: Envoy answered status={rec.get('status')} "
                                             f"details={rec.get('details')} flags={rec.get('flags')}"))
        after = stats(envoy)
        problems = []
        wasm = {k: v for k, v in after.items() if k.startswith("wasm.")}
        for k, v in sorted(wasm.items()):
            if any(w in k for w in ("fail", "reload", "crash")) and v != 0:
                problems.append(f"stat {k} = {v}")
        for k in sorted(k for k in wasm if k.endswith(".created")):
            if after[k] != before.get(k):
                problems.append(f"stat {k} went {before.get(k)} -> {after[k]} (a VM was recreated)")
        for k, v in sorted(after.items()):
            if k.endswith("rs_too_large") and v:
                problems.append(f"stat {k} = {v}")
        g = "wasmcustom.mcp_oauth_guard."
        if filter_a is not None:
            if g + "response.host_refused" not in after:
                problems.append(f"stat {g}response.host_refused missing")
            elif after[g + "response.host_refused"] != 0:
                problems.append(f"stat {g}response.host_refused = {after[g + 'response.host_refused']}")
            want = Counter()
            for c in cases:
                if c.expect != "identical":
                    name = {"stale_page_headers_only": "stale_client_page",
                            "stale_page": "stale_client_page"}.get(c.expect, c.expect)
                    want[name] += 1
            for name in ("invalid_client", "invalid_grant", "error_in_success", "stale_client_page"):
                got = after.get(f"{g}provider.oauth.rewrite.{name}", 0)
                if got != want[name]:
                    problems.append(f"stat {g}provider.oauth.rewrite.{name} = {got}, "
                                    f"expected rewrites {want[name]}")
        if args.verbose:
            for k, v in sorted(after.items()):
                if k.startswith(("wasm.", "wasmcustom.")) or k.endswith("rs_too_large"):
                    print(f"stat {k}: {v}")
        bad_lines = replay.envoy_problems(tmp / "envoy.log")
        # The filter logs a warning only when Envoy refused one of its writes.
        panics = [ln for ln in (tmp / "envoy.log").read_text(errors="replace").splitlines()
                  if "panic" in ln.lower() or ("[warning][wasm]" in ln and "mcp-oauth-guard" in ln)]
        problems += [f"envoy log: {ln}" for ln in bad_lines + panics]
        if upstream.errors:
            problems += [f"upstream: {e}" for e in upstream.errors[:5]]

    # Report.
    for case, a, b, reasons in unexpected[:25]:
        print(f"UNEXPECTED #{case.id} {case.label} expect={case.expect}: {'; '.join(reasons)}")
        print(describe(case))
        print(show("without filter", b))
        print(show("with filter   ", a))
        print(f"    rerun: tests/differential/run.py --seed {args.seed} --count {count}"
              f"{' --full' if args.full else ''}{' --upstream-h2' if args.upstream_h2 else ''}"
              f" --only {case.id} --verbose")
    if len(unexpected) > 25:
        print(f"... {len(unexpected) - 25} more unexpected differences")
    for case, why in envoy_side[:25]:
        print(f"ENVOY #{case.id} {case.label}: {why}")
        print(describe(case))
    for p in problems:
        print(f"PROBLEM {p}")
    module_after = module_id(args.wasm)
    print(f"module: {module_before}" + ("" if module_after == module_before else
          f"; CHANGED during the run to {module_after} (Envoy loaded it at start)"))
    n = len(cases)
    if skips:
        print("skipped (named): " + ", ".join(f"{t!r} {skipped[t]} cases" for t in skips))
    print(f"seed {args.seed}; upstream over {'HTTP/2 (relay)' if args.upstream_h2 else 'HTTP/1.1'}; "
          f"{tally['proto:h1']} over HTTP/1.1, {tally['proto:h2']} over HTTP/2"
          f"{'' if not why_no_h2 else ' (HTTP/2 skipped: ' + why_no_h2 + ')'}; classes "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_label.items()))
          + f"; {elapsed:.1f} s")
    unexpected_n = len(unexpected) + len({c.id for c, _ in envoy_side} - {c.id for c, *_ in unexpected})
    print(f"{n} exchanges, {tally['identical']} identical, {tally['rewrite']} expected rewrites, "
          f"{unexpected_n} unexpected differences"
          + (f"; {len(problems)} Envoy/stat problems" if problems else ""))
    return 0 if unexpected_n == 0 and not problems and n > 0 else 1


def main(argv: list[str]) -> int:
    return replay.run_until_interrupted(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
