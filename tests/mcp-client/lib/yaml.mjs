// A tiny YAML emitter for the generated Envoy bootstrap: maps, lists, strings
// (multi-line ones as literal blocks), numbers and booleans. Enough for
// configuration we build ourselves; not a general serializer.

const PLAIN = /^[A-Za-z_./][A-Za-z0-9_.\/-]*$/;

function scalar(value) {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  const s = String(value);
  if (PLAIN.test(s) && !['true', 'false', 'null', 'yes', 'no', 'on', 'off'].includes(s.toLowerCase())) return s;
  return JSON.stringify(s);
}

function isBlock(value) {
  return typeof value === 'string' && value.includes('\n');
}

function block(value, indent) {
  const pad = ' '.repeat(indent);
  const body = value.endsWith('\n') ? value.slice(0, -1) : value;
  return `|${value.endsWith('\n') ? '' : '-'}\n${body
    .split('\n')
    .map((line) => (line.length ? pad + line : ''))
    .join('\n')}`;
}

function emit(value, indent) {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return ' []';
    return value
      .map((item) => {
        if (item && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length) {
          const inner = emit(item, indent + 2).replace(/^\n */, '');
          return `\n${pad}- ${inner}`;
        }
        if (isBlock(item)) return `\n${pad}- ${block(item, indent + 2)}`;
        if (Array.isArray(item) || (item && typeof item === 'object')) return `\n${pad}-${emit(item, indent + 2)}`;
        return `\n${pad}- ${scalar(item)}`;
      })
      .join('');
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return ' {}';
    return keys
      .map((key) => {
        const v = value[key];
        const k = scalar(key);
        if (isBlock(v)) return `\n${pad}${k}: ${block(v, indent + 2)}`;
        if (v && typeof v === 'object') return `\n${pad}${k}:${emit(v, indent + 2)}`;
        return `\n${pad}${k}: ${scalar(v)}`;
      })
      .join('');
  }
  return ` ${scalar(value)}`;
}

export function toYaml(value) {
  return `${emit(value, 0).replace(/^\n/, '')}\n`;
}
