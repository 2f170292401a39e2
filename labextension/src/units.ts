/**
 * How a byte count reads: `999 B`, `1.5 kB`, `12.0 MB/s` (decimal units).
 * The one formatter of the extension, written as lepton_nb/units.py writes
 * them, so the panel and the notebook's widget and status show the same text.
 */

/** Decimal prefixes, as the monitor shows them (`kB` is a thousand bytes). */
const PREFIXES = ['', 'k', 'M', 'G', 'T'];

/**
 * `n` bytes (or bytes/s with `unit = 'B/s'`): whole bytes below a thousand,
 * then one decimal with the largest prefix that keeps the number under a
 * thousand (up to `T`); `n/a` for null or undefined.
 */
export function size(n: number | null | undefined, unit = 'B'): string {
  if (n === null || n === undefined) {
    return 'n/a';
  }
  let i = 0;
  while (Math.abs(n) >= 1000 && i < PREFIXES.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n.toFixed(0)} ${unit}` : `${n.toFixed(1)} ${PREFIXES[i]}${unit}`;
}
