// Render the arithmatex spans (\( ... \), \[ ... \]) with the vendored KaTeX, on every page load
// (including material's instant navigation).
function renderMath() {
  renderMathInElement(document.body, {
    delimiters: [
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
    ],
    throwOnError: false,
  });
}
if (typeof document$ !== "undefined") { document$.subscribe(renderMath); } else { window.addEventListener("load", renderMath); }
