// Numbers and times for people.

export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n.toLocaleString('en-US');
}

export function rate(perSec: number): string {
  if (perSec >= 1e6) return (perSec / 1e6).toFixed(1) + 'M/s';
  if (perSec >= 1e4) return (perSec / 1e3).toFixed(0) + 'k/s';
  if (perSec >= 1e3) return (perSec / 1e3).toFixed(1) + 'k/s';
  return perSec.toFixed(perSec < 10 ? 1 : 0) + '/s';
}

export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '–';
  if (s < 1) return (s * 1000).toFixed(0) + ' ms';
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}

export function bytes(b: number | null | undefined): string {
  if (b === null || b === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}

export function when(iso: string | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getFullYear() < 2) return '–';
  return d.toLocaleString();
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t) || new Date(iso).getFullYear() < 2) return '–';
  return seconds(Math.max(0, (now - t) / 1000)) + ' ago';
}
