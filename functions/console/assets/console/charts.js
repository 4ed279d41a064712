// SVG charts drawn from data (no library): horizontal bars, a donut with its legend, and
// vertical columns for distributions. Colours come from the stylesheet (classes c0..c7).
import { h, fmtNumber } from './dom.js';

const s = (tag, attrs, ...kids) => h(`svg:${tag}`, attrs, ...kids);

/** Horizontal bars: items [{label, value}], sorted as given. */
export function bars(items, { unit = '', title = '' } = {}) {
  const rows = items.length || 1;
  const rowH = 26;
  const labelW = 130;
  const width = 420;
  const height = rows * rowH + 8;
  const max = Math.max(1, ...items.map((i) => Number(i.value) || 0));
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart bars', role: 'img',
    'aria-label': title || 'bar chart', preserveAspectRatio: 'xMinYMin meet',
  });
  if (!items.length) svg.append(s('text', { x: 0, y: 18, class: 'chart-empty' }, 'No data yet'));
  items.forEach((item, i) => {
    const y = i * rowH + 4;
    const w = Math.max(item.value > 0 ? 2 : 0, ((Number(item.value) || 0) / max) * (width - labelW - 60));
    svg.append(
      s('text', { x: labelW - 8, y: y + 15, class: 'chart-label', 'text-anchor': 'end' }, item.label),
      s('rect', { x: labelW, y: y + 3, width: w, height: rowH - 10, rx: 3, class: `c${i % 8}` },
        s('title', {}, `${item.label}: ${fmtNumber(item.value, 2).replace(/\.00$/, '')}${unit}`)),
      s('text', { x: labelW + w + 6, y: y + 15, class: 'chart-value' },
        `${fmtNumber(item.value, Number.isInteger(Number(item.value)) ? 0 : 1)}${unit}`),
    );
  });
  return svg;
}

/** A donut of parts [{label, value}] with the total in the middle and a legend beside it. */
export function donut(items, { title = '', centre = 'total' } = {}) {
  const total = items.reduce((a, i) => a + (Number(i.value) || 0), 0);
  const r = 52;
  const c = 2 * Math.PI * r;
  const svg = s('svg', { viewBox: '0 0 140 140', class: 'chart donut', role: 'img', 'aria-label': title || 'donut chart' });
  svg.append(s('circle', { cx: 70, cy: 70, r, class: 'donut-track' }));
  let offset = 0;
  items.forEach((item, i) => {
    const v = Number(item.value) || 0;
    if (!total || !v) return;
    const len = (v / total) * c;
    svg.append(s('circle', {
      cx: 70, cy: 70, r, class: `donut-part s${(item.colour ?? i) % 8}`,
      'stroke-dasharray': `${len} ${c - len}`, 'stroke-dashoffset': -offset,
      transform: 'rotate(-90 70 70)',
    }, s('title', {}, `${item.label}: ${v}`)));
    offset += len;
  });
  svg.append(
    s('text', { x: 70, y: 70, class: 'donut-total', 'text-anchor': 'middle' }, fmtNumber(total)),
    s('text', { x: 70, y: 88, class: 'donut-caption', 'text-anchor': 'middle' }, centre),
  );
  const legend = h('ul', { class: 'legend' }, items.map((item, i) => h('li', {},
    h('span', { class: `swatch c${(item.colour ?? i) % 8}` }), h('span', { class: 'legend-label' }, item.label),
    h('span', { class: 'legend-value' }, fmtNumber(item.value)))));
  return h('div', { class: 'donut-wrap' }, svg, legend);
}

/** Vertical columns, e.g. a latency histogram: items [{label, value}]. */
export function columns(items, { title = '' } = {}) {
  const width = 420;
  const height = 150;
  const n = Math.max(1, items.length);
  const gap = 6;
  const colW = (width - gap * (n + 1)) / n;
  const max = Math.max(1, ...items.map((i) => Number(i.value) || 0));
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart columns', role: 'img', 'aria-label': title || 'column chart' });
  svg.append(s('line', { x1: 0, x2: width, y1: height - 22, y2: height - 22, class: 'axis' }));
  if (!items.length) svg.append(s('text', { x: 0, y: 18, class: 'chart-empty' }, 'No data yet'));
  items.forEach((item, i) => {
    const v = Number(item.value) || 0;
    const hgt = (v / max) * (height - 44);
    const x = gap + i * (colW + gap);
    svg.append(
      s('rect', { x, y: height - 22 - hgt, width: colW, height: hgt, rx: 2, class: 'c0' },
        s('title', {}, `${item.label}: ${v}`)),
      s('text', { x: x + colW / 2, y: height - 8, class: 'chart-label', 'text-anchor': 'middle' }, item.label),
      v ? s('text', { x: x + colW / 2, y: height - 26 - hgt, class: 'chart-value', 'text-anchor': 'middle' }, fmtNumber(v)) : null,
    );
  });
  return svg;
}

/** A thin progress gauge for a ratio 0..1. */
export function gauge(ratio) {
  const v = Math.max(0, Math.min(1, Number(ratio) || 0));
  return s('svg', { viewBox: '0 0 100 6', class: 'gauge', preserveAspectRatio: 'none', role: 'img', 'aria-label': `${Math.round(v * 100)}%` },
    s('rect', { x: 0, y: 0, width: 100, height: 6, rx: 3, class: 'gauge-track' }),
    s('rect', { x: 0, y: 0, width: v * 100, height: 6, rx: 3, class: 'gauge-fill' }));
}
