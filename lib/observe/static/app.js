// The web view of exactor: draws each job from the status its coordinator writes, as the server
// pushes it over server-sent events (/events). Plain DOM and SVG, uPlot for the checkpoint plot.

const jobs = new Map() // job -> { status, previous, checkpoints: Map<n, CheckpointStats> }
let selected = new URLSearchParams(location.search).get("job")
let plot

const esc = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]
  )
const num = (n) => Number(n ?? 0).toLocaleString("en")
const opOf = (id) => id.slice(0, id.lastIndexOf("#"))
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB")

/** Takes one status; `draw` false while a batch is read, drawn once at its end. */
const onStatus = (s, draw = true) => {
  const entry = jobs.get(s.job) ?? { checkpoints: new Map() }
  if (entry.status && entry.status.startedAt !== s.startedAt) entry.checkpoints = new Map() // a new run
  entry.previous = entry.status
  entry.status = s
  for (const c of s.history) entry.checkpoints.set(c.n, c)
  jobs.set(s.job, entry)
  if (selected === null) selected = s.job
  if (!draw) return
  drawNav()
  if (s.job === selected) drawJob(entry)
}

const drawNav = () => {
  const nav = document.getElementById("jobs")
  nav.innerHTML = [...jobs.keys()]
    .sort()
    .map(
      (j) =>
        `<button data-job="${esc(j)}" class="${j === selected ? "selected" : ""}">${esc(j)} <span class="state ${esc(jobs.get(j).status.state)}">${esc(jobs.get(j).status.state)}</span></button>`
    )
    .join("")
  for (const b of nav.querySelectorAll("button"))
    b.onclick = () => {
      selected = b.dataset.job
      history.replaceState(null, "", `?job=${encodeURIComponent(selected)}`)
      plot?.destroy()
      plot = undefined
      document.getElementById("job").innerHTML = ""
      drawNav()
      drawJob(jobs.get(selected))
    }
}

/** Records out per second of an instance, from the last two statuses. */
const rate = (entry, inst) => {
  const p = entry.previous?.instances.find((i) => i.id === inst.id)
  const dt = (entry.status.updatedAt - (entry.previous?.updatedAt ?? 0)) / 1000
  if (!p || dt <= 0 || inst.recordsOut < p.recordsOut) return 0
  return (inst.recordsOut - p.recordsOut) / dt
}

const committedBySink = (s) =>
  (s.graph?.operators ?? [])
    .filter((o) => o.kind === "sink")
    .map((o) => ({
      sink: o.name,
      committed: s.instances
        .filter((i) => opOf(i.id) === o.name)
        .reduce((a, i) => a + (i.recordsCommitted ?? 0), 0)
    }))

const skeleton = () => `
  <section class="summary" id="summary"></section>
  <h2>Operator graph</h2><div id="graph"></div>
  <h2>Checkpoints <span class="muted">(duration and alignment in ms, size in KB; aborted ones in red)</span></h2><div id="plot"></div>
  <h2>Recoveries</h2><div id="timeline"></div>
  <h2>Event time</h2><p class="muted" id="watermarks">This job has no event time: no watermarks to show.</p>`

const drawJob = (entry) => {
  if (!entry) return
  const main = document.getElementById("job")
  if (!document.getElementById("summary")) main.innerHTML = skeleton()
  const s = entry.status
  const sinks = committedBySink(s)
  document.getElementById("summary").innerHTML = `
    <span>job <b>${esc(s.job)}</b> <span class="state ${esc(s.state)}">${esc(s.state)}</span>${s.reason ? ` <span class="muted">${esc(s.reason)}</span>` : ""}</span>
    <span>epoch <b>${s.epoch}</b></span>
    <span>checkpoints <b>${s.checkpoints.completed}</b> completed, <b>${s.checkpoints.aborted}</b> aborted${s.checkpoints.latest === undefined ? "" : `, latest <b>${s.checkpoints.latest}</b>`}</span>
    <span>recoveries <b>${s.recoveries}</b></span>
    ${sinks.map((c) => `<span>committed by <b>${esc(c.sink)}</b>: <b class="committed" data-sink="${esc(c.sink)}" data-committed="${c.committed}">${num(c.committed)}</b></span>`).join("")}
    <span class="muted">status written ${clock(s.updatedAt)}</span>`
  drawGraph(entry)
  drawPlot(entry)
  drawTimeline(entry)
  drawEventTime(entry)
}

const END = Number.MAX_SAFE_INTEGER
const showWatermark = (w) => (w >= END ? "END" : w <= -END ? "−∞" : new Date(w).toISOString())
const showLag = (ms) =>
  ms < 120_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms < 7_200_000
      ? `${(ms / 60_000).toFixed(1)} min`
      : `${(ms / 3_600_000).toFixed(1)} h`

/** Per operator with event time: min watermark over its instances, lag, idle, timers, late records. */
const drawEventTime = (entry) => {
  const s = entry.status
  const ops = new Map()
  for (const i of s.instances) {
    if (typeof i.watermark !== "number") continue
    const o = ops.get(opOf(i.id)) ?? { watermark: END, idle: 0, idleInputs: 0, timers: 0, late: 0, firing: 0 }
    o.watermark = Math.min(o.watermark, i.watermark)
    o.idle += i.idle === true ? 1 : 0
    o.idleInputs += i.idleInputs ?? 0
    o.timers += i.timers ?? 0
    o.late += i.lateRecords ?? 0
    o.firing += i.firing === true ? 1 : 0
    ops.set(opOf(i.id), o)
  }
  const el = document.getElementById("watermarks")
  if (ops.size === 0) {
    el.outerHTML = `<p class="muted" id="watermarks">This job has no event time: no watermarks to show.</p>`
    return
  }
  const rows = [...ops].map(
    ([name, o]) =>
      `<tr data-operator="${esc(name)}"><td>${esc(name)}</td><td class="watermark">${esc(showWatermark(o.watermark))}</td><td>${o.watermark >= END || o.watermark <= -END ? "" : esc(showLag(Math.max(0, s.updatedAt - o.watermark)))}</td><td>${o.idle}</td><td>${o.idleInputs}</td><td>${num(o.timers)}</td><td>${num(o.late)}</td><td>${o.firing}</td></tr>`
  )
  el.outerHTML = `<table id="watermarks"><thead><tr><th>operator</th><th>watermark</th><th>lag</th><th>idle</th><th>idle inputs</th><th>timers</th><th>late</th><th>firing</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
}

const drawGraph = (entry) => {
  const s = entry.status
  const ops = s.graph?.operators ?? []
  const colW = 210
  const boxH = 78
  const gap = 10
  const top = 26
  const height = top + Math.max(1, ...ops.map((o) => o.parallelism)) * (boxH + gap)
  const x = new Map(ops.map((o, k) => [o.name, 10 + k * (colW + 50)]))
  const parts = []
  for (const e of s.graph?.edges ?? []) {
    const x1 = x.get(e.from) + colW - 30
    const x2 = x.get(e.to)
    parts.push(
      `<line class="edge" x1="${x1}" y1="${top + boxH / 2}" x2="${x2 - 4}" y2="${top + boxH / 2}"></line>`
    )
    parts.push(
      `<text x="${(x1 + x2) / 2}" y="${top + boxH / 2 - 6}" text-anchor="middle" class="muted">${esc(e.partitioning)}</text>`
    )
  }
  for (const o of ops) {
    const ox = x.get(o.name)
    parts.push(`<text class="op" x="${ox}" y="16">${esc(o.name)} · ${esc(o.kind)} · ×${o.parallelism}</text>`)
    const instances = s.instances.filter((i) => opOf(i.id) === o.name)
    instances.forEach((i, k) => {
      const y = top + k * (boxH + gap)
      const lines = [
        `${i.id} · ${i.phase}`,
        `in ${num(i.recordsIn)} · out ${num(i.recordsOut)}`,
        `${num(Math.round(rate(entry, i)))}/s · backpressure ${Math.round((i.backpressure ?? 0) * 100)} %`,
        o.kind === "sink"
          ? `committed ${num(i.recordsCommitted)} · align ${i.lastAlignmentMs ?? 0} ms`
          : `align ${i.lastAlignmentMs ?? 0} ms · restarts ${i.restarts}`
      ]
      parts.push(
        `<g class="instance" data-instance="${esc(i.id)}" data-phase="${esc(i.phase)}"><rect class="instance phase-${esc(i.phase)}" x="${ox}" y="${y}" width="${colW - 30}" height="${boxH}" rx="4"></rect>${lines
          .map((l, n) => `<text x="${ox + 8}" y="${y + 17 + n * 17}">${esc(l)}</text>`)
          .join("")}</g>`
      )
    })
  }
  const width = 20 + ops.length * (colW + 50)
  document.getElementById("graph").innerHTML =
    `<svg width="${width}" height="${height}" role="img" aria-label="operator graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#6b7280"></path></marker></defs>${parts.join("")}</svg>`
}

const drawPlot = (entry) => {
  const all = [...entry.checkpoints.values()].sort((a, b) => a.at - b.at)
  const el = document.getElementById("plot")
  el.dataset.points = String(all.length)
  el.dataset.failed = String(all.filter((c) => c.status !== "completed").length)
  const data = [
    all.map((c) => c.at / 1000),
    all.map((c) => (c.status === "completed" ? c.durationMs : null)),
    all.map((c) => (c.status === "completed" ? c.alignmentMs : null)),
    all.map((c) => (c.status === "completed" ? c.size / 1024 : null)),
    all.map((c) => (c.status === "completed" ? null : c.durationMs))
  ]
  if (plot) {
    plot.setData(data)
    return
  }
  if (typeof uPlot === "undefined") {
    el.textContent = `${all.length} checkpoints (uPlot did not load)`
    return
  }
  plot = new uPlot(
    {
      width: Math.max(600, el.clientWidth - 16),
      height: 240,
      scales: { x: { time: true }, ms: {}, kb: {} },
      axes: [{}, { scale: "ms", label: "ms" }, { scale: "kb", side: 1, label: "KB", grid: { show: false } }],
      series: [
        {},
        { label: "duration ms", scale: "ms", stroke: "#2563eb", width: 2, points: { show: true } },
        { label: "alignment ms", scale: "ms", stroke: "#d97706", width: 1.5, points: { show: true } },
        { label: "size KB", scale: "kb", stroke: "#6b7280", width: 1, dash: [4, 4], points: { show: true } },
        {
          label: "aborted",
          scale: "ms",
          stroke: "#dc2626",
          width: 0,
          paths: () => null,
          points: { show: true, size: 9, fill: "#dc2626" }
        }
      ]
    },
    data,
    el
  )
}

const drawTimeline = (entry) => {
  const s = entry.status
  const log = s.recoveryLog ?? []
  const el = document.getElementById("timeline")
  const start = s.startedAt
  const end = Math.max(s.updatedAt, start + 1)
  const w = Math.max(600, el.clientWidth - 16)
  const at = (t) => 10 + ((t - start) / (end - start)) * (w - 20)
  const marks = log
    .map(
      (r) =>
        `<circle class="recovery" cx="${at(r.at)}" cy="20" r="6"><title>${esc(clock(r.at))} epoch ${r.epoch}: ${esc(r.cause)}</title></circle>`
    )
    .join("")
  el.innerHTML = `<svg width="${w}" height="44" role="img" aria-label="recoveries"><line x1="10" y1="20" x2="${w - 10}" y2="20" stroke="#d8dce3" stroke-width="2"></line>${marks}<text x="10" y="40">${esc(clock(start))}</text><text x="${w - 10}" y="40" text-anchor="end">${esc(clock(end))}</text></svg>${
    log.length === 0
      ? `<p class="muted">No recovery since this run started.</p>`
      : `<ol class="recoveries">${log
          .map(
            (r) =>
              `<li class="recovery" data-epoch="${r.epoch}">${esc(clock(r.at))} · epoch ${r.epoch} · ${esc(r.cause)}</li>`
          )
          .join("")}</ol>`
  }`
}

const connect = () => {
  const feed = document.getElementById("feed")
  const events = new EventSource("/events")
  events.addEventListener("status", (e) => onStatus(JSON.parse(e.data)))
  events.onopen = () => {
    feed.textContent = "live"
  }
  events.onerror = () => {
    feed.textContent = "reconnecting…"
  }
}

fetch("/api/jobs")
  .then((r) => r.json())
  .then((list) => {
    for (const s of list) onStatus(s, false)
    drawNav()
    if (jobs.has(selected)) drawJob(jobs.get(selected))
  })
  .finally(connect)
