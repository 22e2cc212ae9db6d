// The live layer of the page `storyboard serve` shows: it follows the builds over Server-Sent Events.
(() => {
  const token = document.querySelector('meta[name="storyboard-token"]').content;
  const keys = {};        // panel index -> content key of the image shown
  let shownMain = null;   // the <main> markup of the index.html on screen, before the live layer touched it

  const error = document.createElement("pre");
  error.id = "sb-error";
  error.hidden = true;
  error.setAttribute("role", "alert");
  const status = document.createElement("p");
  status.id = "sb-status";
  status.setAttribute("aria-live", "polite");
  document.body.append(error, status);

  const figure = (n) => document.getElementById(`panel-${n}`);

  function showError(text) { error.textContent = text; error.hidden = false; }
  function clearError() { error.hidden = true; error.textContent = ""; }

  function setProgress(n, step, total) {
    const fig = figure(n);
    if (!fig) return;
    fig.classList.add("sb-drawing");
    let bar = fig.querySelector(".sb-progress");
    if (!bar) {
      bar = document.createElement("div");
      bar.className = "sb-progress";
      bar.setAttribute("role", "progressbar");
      bar.append(document.createElement("span"));
      fig.querySelector(".art").append(bar);
    }
    bar.setAttribute("aria-valuenow", String(step));
    bar.setAttribute("aria-valuemax", String(total));
    bar.dataset.step = `${step}/${total}`;
    bar.firstChild.style.width = `${total ? (100 * step) / total : 0}%`;
  }

  function clearProgress(n) {
    const fig = figure(n);
    if (!fig) return;
    fig.classList.remove("sb-drawing");
    fig.querySelector(".sb-progress")?.remove();
  }

  function setImage(n, src, key) {
    const img = figure(n)?.querySelector(".art img");
    if (!img || keys[n] === key) return;
    keys[n] = key;
    img.loading = "eager";
    img.src = src;
    img.dataset.key = key;
  }

  async function post(path, body) {
    const reply = await fetch(path, {
      method: "POST", headers: {"Content-Type": "application/json", "X-Storyboard-Token": token},
      body: JSON.stringify(body || {}),
    });
    if (!reply.ok) {
      const problem = await reply.json().catch(() => ({error: reply.statusText}));
      showError(problem.error);
    }
  }

  function addTools() {
    for (const fig of document.querySelectorAll("figure.panel")) {
      if (fig.querySelector(".sb-tools")) continue;
      const n = fig.dataset.index;
      const tools = document.createElement("div");
      tools.className = "sb-tools";
      const button = (label, action) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        b.dataset.action = action;
        tools.append(b);
        return b;
      };
      button("Redraw", "redraw").addEventListener("click", () => post(`/api/panels/${n}/redraw`));
      button("Variants", "variants").addEventListener("click", () => post(`/api/panels/${n}/variants`, {count: 4}));
      const strip = document.createElement("div");
      strip.className = "sb-variants";
      fig.querySelector(".art").after(tools, strip);
    }
  }

  function candidate(n, seed, src, current) {
    const strip = figure(n)?.querySelector(".sb-variants");
    if (!strip) return;
    let b = strip.querySelector(`[data-seed="${seed}"]`);
    if (!b) {
      b = document.createElement("button");
      b.type = "button";
      b.dataset.seed = String(seed);
      b.title = `Keep seed ${seed}`;
      b.append(document.createElement("img"), document.createTextNode(`seed ${seed}`));
      b.addEventListener("click", () => post(`/api/panels/${n}/pick`, {seed}));
      const later = [...strip.children].find((c) => Number(c.dataset.seed) > seed);
      strip.insertBefore(b, later || null);
    }
    b.querySelector("img").src = src;
    b.classList.toggle("sb-current", seed === current);
  }

  async function pageChanged(panels) {
    const reply = await fetch("index.html", {cache: "no-store"});
    if (!reply.ok) return;
    const fresh = new DOMParser().parseFromString(await reply.text(), "text/html");
    const main = fresh.querySelector("main");
    if (main && main.innerHTML !== shownMain) {
      // Captions, bubbles or the layout changed: put the new page in place, keeping where the reader is.
      const x = scrollX, y = scrollY;
      shownMain = main.innerHTML;
      for (const p of panels) {  // name each image by its key, so that no stale copy is shown from the cache
        const img = main.querySelector(`#panel-${p.index} .art img`);
        if (img) { img.src = `${p.file}?v=${p.key}`; img.dataset.key = p.key; img.loading = "eager"; }
      }
      document.querySelector("main").innerHTML = main.innerHTML;
      const style = fresh.querySelector("head style");
      if (style) document.querySelector("head style").textContent = style.textContent;
      document.title = fresh.title;
      const dialog = fresh.querySelector("dialog.lightbox");
      if (dialog) document.querySelector("dialog.lightbox").replaceWith(document.importNode(dialog, true));
      for (const script of fresh.querySelectorAll("body script")) {
        const again = document.createElement("script");
        again.textContent = script.textContent;
        document.body.append(again);
      }
      for (const key of Object.keys(keys)) delete keys[key];
      for (const p of panels) keys[p.index] = p.key;
      addTools();
      scrollTo(x, y);
    }
    for (const p of panels) {
      clearProgress(p.index);
      setImage(p.index, `${p.file}?v=${p.key}`, p.key);
    }
  }

  const source = new EventSource("/events");
  const on = (kind, handler) => source.addEventListener(kind, (e) => handler(JSON.parse(e.data)));
  on("build-started", () => { status.textContent = "building…"; });
  on("build-drawing", (e) => { for (const n of e.panels) setProgress(n, 0, 1); });
  on("panel-progress", (e) => setProgress(e.panel, e.step, e.total));
  on("panel-done", (e) => { clearProgress(e.panel); setImage(e.panel, e.src, e.key); });
  on("build-cancelled", () => { status.textContent = "restarting…"; });
  on("build-done", async (e) => {
    clearError();
    await pageChanged(e.panels);
    status.textContent = `rendered ${e.rendered}, reused ${e.reused}`;
    document.documentElement.dataset.builds = String(Number(document.documentElement.dataset.builds || 0) + 1);
  });
  on("build-failed", (e) => {
    for (const fig of document.querySelectorAll("figure.panel")) clearProgress(fig.dataset.index);
    showError(e.error);
    status.textContent = "build failed";
  });
  on("variants-started", (e) => { for (const seed of e.seeds) candidate(e.panel, seed, "", null); });
  on("variant-done", (e) => candidate(e.panel, e.seed, e.src, null));
  on("variants-done", (e) => { for (const c of e.candidates) candidate(e.panel, c.seed, c.src, e.current); });
  on("variants-failed", (e) => showError(e.error));
  on("export-done", (e) => {
    const video = document.querySelector("video.animatic");
    if (video && e.made.some((file) => file.endsWith(".mp4"))) video.src = `${video.getAttribute("src").split("?")[0]}?v=${Date.now()}`;
    if (e.made.length) status.textContent += ` · exported ${e.made.join(", ")}`;
  });
  on("export-failed", (e) => showError(e.error));

  shownMain = document.querySelector("main").innerHTML;
  addTools();
  fetch("manifest.json", {cache: "no-store"}).then((r) => (r.ok ? r.json() : null)).then((m) => {
    for (const p of m?.panels || []) if (keys[p.index] === undefined) keys[p.index] = p.key;
  }).catch(() => {});
})();
