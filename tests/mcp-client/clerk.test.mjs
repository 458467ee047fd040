// End-to-end: official MCP TypeScript SDK client -> Envoy (with / without
// mcp-oauth-guard) -> oidc-provider answering like clerk. See lib/suite.mjs.
import { defineShapeSuite } from './lib/suite.mjs';

defineShapeSuite(['clerk']);
