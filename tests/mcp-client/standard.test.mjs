// End-to-end: official MCP TypeScript SDK client -> Envoy (with / without
// mcp-oauth-guard) -> oidc-provider answering with its own standard 401 invalid_client (baseline: the filter must leave it working). See lib/suite.mjs.
import { defineShapeSuite } from './lib/suite.mjs';

defineShapeSuite(['standard']);
