// A self-contained SVG line plot, enough for Finn et al. (2017) Figure 2: the true sine, the K
// support points, and the model before and after adaptation.

export interface Series { label: string; x: ArrayLike<number>; y: ArrayLike<number>; color: string; dash?: string; points?: boolean }

export function linePlot(series: Series[], o: { title: string; width?: number; height?: number; xRange: [number, number]; yRange: [number, number]; xStep?: number; yStep?: number; xLabel?: string; yLabel?: string }): string {
  const W = o.width ?? 640, H = o.height ?? 400, L = 50, R = 160, T = 36, B = 36;
  const sx = (x: number) => L + ((x - o.xRange[0]) / (o.xRange[1] - o.xRange[0])) * (W - L - R);
  const sy = (y: number) => H - B - ((Math.min(Math.max(y, o.yRange[0]), o.yRange[1]) - o.yRange[0]) / (o.yRange[1] - o.yRange[0])) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${(W - R + L) / 2}" y="20" text-anchor="middle" font-size="14">${escape(o.title)}</text>`);
  // Axes with ticks every xStep / yStep (default 1).
  const xStep = o.xStep ?? 1, yStep = o.yStep ?? 1;
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  for (let x = Math.ceil(o.xRange[0] / xStep) * xStep; x <= o.xRange[1]; x += xStep) {
    parts.push(`<line x1="${sx(x)}" y1="${H - B}" x2="${sx(x)}" y2="${H - B + 4}" stroke="#888"/><text x="${sx(x)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`);
  }
  for (let y = Math.ceil(o.yRange[0] / yStep) * yStep; y <= o.yRange[1]; y += yStep) {
    parts.push(`<line x1="${L - 4}" y1="${sy(y)}" x2="${L}" y2="${sy(y)}" stroke="#888"/><text x="${L - 8}" y="${sy(y) + 4}" text-anchor="end">${y}</text>`);
  }
  if (o.xLabel) parts.push(`<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">${escape(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text x="12" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(T + H - B) / 2})">${escape(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    if (s.points) {
      for (let k = 0; k < s.x.length; k++) parts.push(`<circle cx="${sx(s.x[k]).toFixed(1)}" cy="${sy(s.y[k]).toFixed(1)}" r="4" fill="${s.color}"/>`);
    } else {
      const d = Array.from({ length: s.x.length }, (_, k) => `${k ? 'L' : 'M'}${sx(s.x[k]).toFixed(1)},${sy(s.y[k]).toFixed(1)}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    const ly = T + 10 + i * 20, lx = W - R + 12;
    parts.push(s.points
      ? `<circle cx="${lx + 12}" cy="${ly}" r="4" fill="${s.color}"/>`
      : `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    parts.push(`<text x="${lx + 30}" y="${ly + 4}">${escape(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
