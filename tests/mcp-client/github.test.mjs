// End-to-end: official MCP TypeScript SDK client -> Envoy (with / without
// mcp-oauth-guard) -> oidc-provider answering like GitHub (200 with an error
// body, form-encoded and JSON). See lib/suite.mjs.
import { defineShapeSuite } from './lib/suite.mjs';

defineShapeSuite(['github-form', 'github-json']);
