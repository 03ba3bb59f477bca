// Colours from JupyterLab's CSS variables (with light-theme fallbacks outside JupyterLab), re-read on theme change.

export type RGB = [number, number, number];

export interface Theme {
  background: RGB;
  foreground: RGB;
  muted: RGB;
  border: RGB;
  /** High end of sequential scales and positive end of diverging ones. */
  accent: RGB;
  /** Negative end of diverging scales. */
  negative: RGB;
  dark: boolean;
}

const VARIABLES: Record<Exclude<keyof Theme, "dark">, [string, string]> = {
  background: ["--jp-layout-color0", "#ffffff"],
  foreground: ["--jp-ui-font-color0", "#1f1f1f"],
  muted: ["--jp-ui-font-color2", "#757575"],
  border: ["--jp-border-color1", "#bdbdbd"],
  accent: ["--jp-brand-color1", "#1976d2"],
  negative: ["--jp-error-color1", "#d32f2f"],
};

/** Parses the `rgb(...)`/`rgba(...)` strings that getComputedStyle returns; alpha is composited on `under`. */
export function parseColour(text: string, under: RGB = [255, 255, 255]): RGB | null {
  const match = text.match(/rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)/);
  if (!match) return null;
  const rgb = [Number(match[1]), Number(match[2]), Number(match[3])];
  const alphaText = match[4];
  const alpha = alphaText === undefined ? 1 : alphaText.endsWith("%") ? Number(alphaText.slice(0, -1)) / 100 : Number(alphaText);
  return rgb.map((c, i) => Math.round(c * alpha + under[i] * (1 - alpha))) as RGB;
}

export function luminance([r, g, b]: RGB): number {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

export function mix(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** Resolves the theme's colours at `el` (or at <body> while `el` is not yet in the document). */
export function readTheme(el: HTMLElement): Theme {
  const host = el.isConnected ? el : document.body;
  const probe = document.createElement("span");
  probe.style.display = "none";
  host.appendChild(probe);
  const resolve = (name: string, fallback: string, under?: RGB): RGB => {
    probe.style.color = `var(${name}, ${fallback})`;
    return parseColour(getComputedStyle(probe).color, under) ?? (parseColour(fallback) as RGB);
  };
  const background = resolve(...VARIABLES.background);
  const theme: Theme = {
    background,
    foreground: resolve(...VARIABLES.foreground, background),
    muted: resolve(...VARIABLES.muted, background),
    border: resolve(...VARIABLES.border, background),
    accent: resolve(...VARIABLES.accent, background),
    negative: resolve(...VARIABLES.negative, background),
    dark: luminance(background) < 0.5,
  };
  probe.remove();
  if (theme.dark) {
    // on dark backgrounds the brand colours are too dim to be the bright end of a scale
    theme.accent = mix(theme.accent, [255, 255, 255], 0.3);
    theme.negative = mix(theme.negative, [255, 255, 255], 0.2);
  }
  return theme;
}

/** Calls `listener` whenever JupyterLab switches theme, until `signal` aborts. */
export function onThemeChange(listener: () => void, signal: AbortSignal): void {
  const observer = new MutationObserver(listener);
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  signal.addEventListener("abort", () => observer.disconnect());
}
