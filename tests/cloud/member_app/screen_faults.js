// Run by h5_support.screen_faults in the page: what a phone screen gets wrong.
// Every visible thing a thumb taps, its box; a checkbox or radio counts by its label.
(() => {
  const faults = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.visibility !== "hidden" && !el.closest("[hidden]");
  };
  const name = (el) => (el.dataset.testid || el.id || el.textContent.trim().slice(0, 24) || el.tagName);
  const taps = [...document.querySelectorAll(
    "a[href], button, input:not([type=checkbox]):not([type=radio]), select, textarea, label")]
    .filter((el) => el.tagName !== "LABEL" || el.querySelector("input[type=checkbox], input[type=radio]"))
    .filter((el) => !el.classList.contains("skip") && visible(el));
  for (const el of taps) {
    const r = el.getBoundingClientRect();
    if (r.height < 44 - 0.5 || r.width < 44 - 0.5) faults.push(`small target ${name(el)} ${Math.round(r.width)}x${Math.round(r.height)}`);
  }
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) faults.push(`page scrolls sideways (${document.documentElement.scrollWidth} > ${width})`);
  for (const el of document.body.querySelectorAll("*")) {
    if (!visible(el) || el.closest(".skip") || getComputedStyle(el).position === "fixed") continue;
    const r = el.getBoundingClientRect();
    if (r.right > width + 0.5) faults.push(`wider than the screen: ${name(el)} (${Math.round(r.right)})`);
    const style = getComputedStyle(el);
    if (el.scrollWidth > el.clientWidth + 1 && style.overflowX === "visible" && el.clientWidth > 0
        && style.display !== "inline") faults.push(`text overflows: ${name(el)}`);
  }
  // Contrast of text against the first opaque background behind it (WCAG AA).
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (el) => {
    for (let at = el; at; at = at.parentElement) {
      const c = rgb(getComputedStyle(at).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.9)) return c;
    }
    return [255, 255, 255];
  };
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el) || el.closest(".skip, .toast:not(.on)")) continue;
    const style = getComputedStyle(el);
    if (el.closest("button:disabled")) continue;  // WCAG: inactive controls are exempt
    const fg = rgb(style.color), bg = behind(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) faults.push(`contrast ${ratio.toFixed(2)} < ${need}: ${name(el)}`);
  }
  return faults;
})
