// toYAML renders plain JSON data as YAML (block style; strings quoted when
// YAML would read them as something else). The pipeline document the wizard
// builds, for people to read, copy and keep.

const plain = /^[A-Za-z_/][A-Za-z0-9_./ -]*$/;
const reserved = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = String(v);
  if (plain.test(s) && !reserved.test(s) && !s.endsWith(' ') && !s.includes(': ') && !s.includes(' #')) return s;
  return JSON.stringify(s);
}

function key(k: string): string {
  return plain.test(k) && !reserved.test(k) ? k : JSON.stringify(k);
}

function isEmpty(v: unknown): boolean {
  return (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
}

export function toYAML(v: unknown, indent = ''): string {
  if (Array.isArray(v)) {
    if (!v.length) return indent + '[]\n';
    return v
      .map((item) => {
        if (typeof item === 'object' && item !== null && !isEmpty(item)) {
          const body = toYAML(item, indent + '  ');
          return indent + '- ' + body.slice(indent.length + 2);
        }
        return indent + '- ' + (isEmpty(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)) + '\n';
      })
      .join('');
  }
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (!entries.length) return indent + '{}\n';
    return entries
      .map(([k, x]) => {
        if (typeof x === 'object' && x !== null && !isEmpty(x)) return indent + key(k) + ':\n' + toYAML(x, indent + '  ');
        return indent + key(k) + ': ' + (isEmpty(x) ? (Array.isArray(x) ? '[]' : '{}') : scalar(x)) + '\n';
      })
      .join('');
  }
  return indent + scalar(v) + '\n';
}
