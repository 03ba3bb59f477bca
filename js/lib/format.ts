// Number and token formatting shared by tooltips, legends and labels.

/** Three significant digits, a real minus sign, no exponent for ordinary magnitudes. With `resolution` (a
 * slider's step, say), a value nearer 0 than half of it is 0: the float error of `min + k * step` is not a value. */
export function formatNumber(value: number, resolution = 0): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  let text: string;
  if (abs === 0 || abs < resolution / 2) text = "0";
  else if (abs >= 1e4 || abs < 1e-3) text = value.toExponential(2);
  else text = value.toPrecision(3).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
  return text.replace("-", "\u2212");
}

/** A token as shown to people: whitespace made visible, empty tokens marked. */
export function displayToken(token: string): string {
  if (token.length === 0) return "\u2205";
  return token.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/\r/g, "\u240d");
}

/** `'token'` with its position, for tooltips. */
export function quoteToken(token: string, index: number): string {
  return `${index} \u2018${displayToken(token)}\u2019`;
}

/** `value` on the grid of multiples of `step` (0 exactly at the centre), to 12 significant digits. */
export function snap(value: number, step: number): number {
  if (!(step > 0) || !Number.isFinite(value)) return value;
  const snapped = Math.round(value / step) * step;
  return snapped === 0 ? 0 : Number(snapped.toPrecision(12));
}
