// End-to-end with the filter's `auto` preset instead of each provider's own:
// every non-standard shape (and oidc-provider's standard answer) must still
// reach the official TypeScript SDK as 401 invalid_client, and a revoked
// refresh token must stay invalid_grant. (The controls without the filter run
// in the per-provider files.)
import { defineShapeSuite } from './lib/suite.mjs';

defineShapeSuite(['clerk', 'entra', 'okta', 'github-form', 'github-json', 'standard'], {
  deployments: ['path'],
  presetOverride: 'auto',
  controls: false,
});
