// Imported before oidc-provider: oidc-provider 9 prints one warning at import
// time when Node is older than 22. The project's machines run Node 20, which
// the suite works on; hide that one line (and only it).
const warn = console.warn.bind(console);
console.warn = (...args) => {
  if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider WARNING: Unsupported runtime')) return;
  warn(...args);
};
