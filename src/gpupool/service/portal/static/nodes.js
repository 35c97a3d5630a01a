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

  function cellLabel(c, i) {
    if (c.state === "free") return `GPU ${i}: free`;
    if (c.state === "reserved") return `GPU ${i}: reserved for ${c.workload}`;
    return `GPU ${i}: ${c.workload}${c.name ? " " + c.name : ""} (${c.queue}${c.user ? ", " + c.user : ""})`;
  }

  function nodeCard(n) {
    const used = n.cells.filter((c) => c.state === "used").length;
    const reserved = n.cells.filter((c) => c.state === "reserved").length;
    const holders = new Map();
    for (const c of n.cells) {
      if (c.state !== "used") continue;
      const e = holders.get(c.workload) || { c, gpus: 0 };
      e.gpus += 1;
      holders.set(c.workload, e);
    }
    const summary = `${n.name}: ${n.gpus} GPUs${n.gpu_type ? " " + n.gpu_type : ""}, ${used} used, ` +
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
          style: c.state === "used" ? { background: colours.get(cellKey(c)) } :
            c.state === "reserved" ? { "--res": colour(by() === "workload" ? c.workload : "reserved", true) } : null,
        }))),
      n.note ? h("p", { class: "node-note" }, n.note) : null,
      n.state === "lost" ? null : h("p", { class: "node-sum" }, `${used}/${n.gpus} in use · ${n.free} free`),
      holders.size ? h("ul", { class: "holders" }, [...holders.values()].map(({ c, gpus }) => h("li", {},
        h("span", { class: "dot", style: { background: colours.get(cellKey(c)) } }),
        c.name ? h("a", { href: `/portal/workloads/${encodeURIComponent(c.workload)}`, id: `on-${n.name}-${c.workload}` }, c.workload) : c.workload,
        c.name ? ` ${c.name}` : "", h("span", { class: "muted" }, ` ${c.queue} ×${gpus}`)))) : null,
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
