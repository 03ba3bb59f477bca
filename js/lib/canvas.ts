// Canvas helpers: crisp drawing at the device pixel ratio, matrices as bitmaps, pointer-to-cell mapping.

import type { ColourScale } from "./colour";

/** Sizes `canvas` to `width` x `height` CSS pixels backed by device pixels; returns a context in CSS units. */
export function sizeCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d")!;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/**
 * A rows x cols bitmap (one pixel per cell) of row-major `values` coloured by `scale`;
 * NaN cells are transparent.
 */
export function matrixBitmap(values: Float32Array, rows: number, cols: number, scale: ColourScale, offset = 0): HTMLCanvasElement {
  const bitmap = document.createElement("canvas");
  bitmap.width = cols;
  bitmap.height = rows;
  const image = new ImageData(cols, rows);
  const pixels = image.data;
  const lut = scale.lut;
  for (let i = 0; i < rows * cols; i++) {
    const value = values[offset + i];
    if (Number.isNaN(value)) continue;
    const entry = scale.index(value) * 4;
    pixels[i * 4] = lut[entry];
    pixels[i * 4 + 1] = lut[entry + 1];
    pixels[i * 4 + 2] = lut[entry + 2];
    pixels[i * 4 + 3] = 255;
  }
  bitmap.getContext("2d")!.putImageData(image, 0, 0);
  return bitmap;
}

/** Draws a bitmap scaled to the destination rectangle without smoothing (cells stay sharp). */
export function drawBitmap(ctx: CanvasRenderingContext2D, bitmap: HTMLCanvasElement, x: number, y: number, width: number, height: number): void {
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, x, y, width, height);
}

export interface CanvasCell {
  row: number;
  col: number;
}

/** The (row, col) cell under the pointer for a grid of rows x cols filling `el`, or null outside it. */
export function cellAt(event: MouseEvent, el: Element, rows: number, cols: number): CanvasCell | null {
  const rect = el.getBoundingClientRect();
  const x = (event.clientX - rect.left) / rect.width;
  const y = (event.clientY - rect.top) / rect.height;
  if (x < 0 || y < 0 || x >= 1 || y >= 1) return null;
  return { row: Math.floor(y * rows), col: Math.floor(x * cols) };
}
