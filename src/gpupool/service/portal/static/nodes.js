/* Nodes page: a GPU-level occupancy map by pool, coloured by queue or workload, live. */
"use strict";

(() => {
  const { api, h, poll, colour, palette, keepFocus } = GP;
  const root = document.getElementById("pools");
  const legend = document.getElementById("node-legend");
  const form = document.getElementById("colour-form");
  let data = null;
  let lastKey = "";
  let colours = new Map();  // key -> colour, for the keys on the map now (see GP.palette)

  const by = () => form.querySelector("input[name=colour]:checked").value;

  function cellKey(c) {
    return by() === "workload" ? c.workload : c.queue;
  }

  function holderLabel(s) {
    if (s.state === "reserved") return `${s.gpus} reserved for ${s.workload}`;
    return `${s.gpus} ${s.workload}${s.name ? " " + s.name : ""} (${s.queue}${s.user ? ", " + s.user : ""})`;
  }

  function cellLabel(c, i) {
    const idx = c.index ?? i;  // the index the core gave: what the job sees in CUDA_VISIBLE_DEVICES
    if (c.state === "free") return `GPU ${idx}: free`;
    if (c.state === "reserved") return `GPU ${idx}: reserved for ${c.workload}`;
    if (c.state === "shared") {
      return `GPU ${idx}: shared, ${c.used_milli / 1000} used: ` + c.holders.map(holderLabel).join("; ");
    }
    return `GPU ${idx}: ${c.workload}${c.name ? " " + c.name : ""} (${c.queue}${c.user ? ", " + c.user : ""})`;
  }

  /* A shared GPU: each share a band of its colour, as tall as its part of the GPU. */
  function sharedFill(c) {
    let at = 0;
    const stops = [];
    for (const s of c.holders) {
      const col = s.state === "reserved" ? "transparent" : colours.get(by() === "workload" ? s.workload : s.queue);
      const end = Math.min(100, at + s.milli / 10);
      stops.push(`${col} ${at}% ${end}%`);
      at = end;
    }
    if (at < 100) stops.push(`transparent ${at}% 100%`);
    return { background: `linear-gradient(to top, ${stops.join(", ")})` };
  }

  function nodeCard(n) {
    const used = n.cells.filter((c) => c.state === "used" || c.state === "shared").length;
    const shared = n.cells.filter((c) => c.state === "shared").length;
    const reserved = n.cells.filter((c) => c.state === "reserved").length;
    const holders = new Map();
    for (const c of n.cells) {
      if (c.state === "used") {
        const e = holders.get(c.workload) || { c, milli: 0 };
        e.milli += 1000;
        holders.set(c.workload, e);
      } else if (c.state === "shared") {
        for (const s of c.holders) {
          if (s.state !== "used") continue;
          const e = holders.get(s.workload) || { c: s, milli: 0 };
          e.milli += s.milli;
          holders.set(s.workload, e);
        }
      }
    }
    const summary = `${n.name}: ${n.gpus} GPUs${n.gpu_type ? " " + n.gpu_type : ""}, ${used} used` +
      `${shared ? " (" + shared + " shared)" : ""}, ` +
      `${reserved ? reserved + " reserved, " : ""}${n.free} free, ${n.state}`;
    return h("article", { class: `node node-${n.state}`, dataset: { node: n.name } },
      h("header", {},
        h("h3", {}, n.name),
        h("span", { class: "muted" }, n.gpu_type || "no GPU type"),
        n.state !== "ready" ? h("span", { class: "badge st-" + n.state }, n.state) : null),
      h("div", { class: "cells", role: "img", "aria-label": summary },
        n.cells.map((c, i) => h("span", {
          class: "cell cell-" + c.state,
          title: cellLabel(c, i),
          dataset: { gpu: String(c.index ?? i) },
          style: c.state === "used" ? { background: colours.get(cellKey(c)) } :
            c.state === "shared" ? sharedFill(c) :
            c.state === "reserved" ? { "--res": colour(by() === "workload" ? c.workload : "reserved", true) } : null,
        }))),
      n.note ? h("p", { class: "node-note" }, n.note) : null,
      n.state === "lost" ? null : h("p", { class: "node-sum" }, `${used}/${n.gpus} in use · ${n.free} free`),
      holders.size ? h("ul", { class: "holders" }, [...holders.values()].map(({ c, milli }) => h("li", {},
        h("span", { class: "dot", style: { background: colours.get(cellKey(c)) } }),
        c.name ? h("a", { href: `/portal/workloads/${encodeURIComponent(c.workload)}`, id: `on-${n.name}-${c.workload}` }, c.workload) : c.workload,
        c.name ? ` ${c.name}` : "", h("span", { class: "muted" }, ` ${c.queue} ×${milli / 1000}`)))) : null,
    );
  }

  function render() {
    const key = JSON.stringify(data) + by();
    if (key === lastKey) return;
    lastKey = key;
    root.setAttribute("aria-busy", "false");
    const seen = new Map();
    for (const p of data) for (const n of p.nodes) for (const c of n.cells) {
      if (c.state === "used") seen.set(cellKey(c), c);
      if (c.state === "shared") {
        for (const s of c.holders) if (s.state === "used") seen.set(by() === "workload" ? s.workload : s.queue, s);
      }
    }
    colours = palette([...seen.keys()]);
    if (!data.length) {
      root.replaceChildren(h("p", { class: "card" }, "No nodes have joined yet."));
      return;
    }
    keepFocus(() => root.replaceChildren(...data.map((p) => h("section", { class: "pool card", "aria-labelledby": "pool-" + p.name },
      h("div", { class: "pool-head" },
        h("h2", { id: "pool-" + p.name }, `Pool ${p.name}`),
        h("ul", { class: "stats" },
          h("li", {}, h("b", {}, p.nodes.length), " nodes"),
          h("li", {}, h("b", {}, p.gpus), " GPUs"),
          h("li", {}, h("b", {}, p.free), " free"),
          h("li", { title: "the most free GPUs on one node: the biggest member that fits now" }, "largest free block ", h("b", {}, p.largest_free)),
          p.booting ? h("li", {}, h("b", {}, p.booting), " booting") : null,
          p.draining ? h("li", {}, h("b", {}, p.draining), " draining") : null,
          p.headroom_nodes || p.headroom_gpus || p.headroom_follows_arrivals ? h("li", p.headroom_follows_arrivals ? { title: "warm nodes follow the GPUs asked by recent arrivals" } : {}, "headroom ", h("b", {}, `${p.headroom_nodes} nodes / ${p.headroom_gpus} GPUs`), p.headroom_follows_arrivals ? " (follows arrivals)" : null) : null,
        )),
      h("div", { class: "nodes" }, p.nodes.map(nodeCard))))));
    legend.replaceChildren(
      ...[...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, c]) => h("li", {},
        h("span", { class: "swatch", style: { background: colours.get(k) } }),
        by() === "workload" && c.name ? `${k} ${c.name}` : k)),
      h("li", {}, h("span", { class: "swatch cell-reserved" }), "reserved for a waiting workload"),
      h("li", {}, h("span", { class: "swatch cell-free" }), "free"),
    );
  }

  form.addEventListener("change", () => data && render());
  poll(async () => {
    data = await api("/portal/api/nodes");
    render();
  });
})();
