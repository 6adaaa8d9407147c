// The gateway's status page: renders the status document from /events (server-sent
// events). Every value is set as text (textContent), never as HTML: node names, locations
// and readings come from the registry and from the nodes, and are shown as they are.
"use strict";

function text(tag, value, className) {
  const element = document.createElement(tag);
  element.textContent = value === null || value === undefined ? "–" : String(value);
  if (className) element.className = className;
  return element;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function number(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

function readingsCell(node) {
  const cell = document.createElement("td");
  if (!node.readings.length) {
    cell.appendChild(text("span", "no data yet", "muted"));
    return cell;
  }
  for (const reading of node.readings) {
    const unit = reading.unit === null || reading.unit === undefined ? "" : " " + reading.unit;
    cell.appendChild(text("span", reading.name + " " + reading.value + unit, "reading"));
  }
  return cell;
}

function aqiCell(node) {
  const aqi = node.aqi;
  if (!aqi || aqi.value === null || aqi.value === undefined) {
    return text("td", node.kind === "air-quality" ? "not yet (hourly)" : "", "muted");
  }
  const cell = text("td", aqi.value + " " + (aqi.name_en || aqi.category || ""), "aqi");
  cell.title = (aqi.name || "") + (aqi.hour ? " · hour of " + aqi.hour : "");
  if (Array.isArray(aqi.colour) && aqi.colour.length === 3) {
    const [r, g, b] = aqi.colour.map((c) => Math.min(255, Math.max(0, Number(c) | 0)));
    cell.style.backgroundColor = "rgb(" + r + ", " + g + ", " + b + ")";
    cell.style.color = 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000" : "#fff";
  }
  return cell;
}

function trafficCell(node) {
  const flow = node.traffic;
  if (!flow) return text("td", node.kind === "traffic" ? "no flow yet" : "", "muted");
  return text("td", flow.vehicles_per_hour + " veh/h · " + number(flow.pcu_per_hour, 0) +
              " PCU/h" + (flow.lanes ? " · " + flow.lanes + " lanes" : ""));
}

function nodeRow(node, now) {
  const row = document.createElement("tr");
  row.dataset.node = node.name;
  const name = text("td", node.name);
  name.title = node.location || "";
  row.appendChild(name);
  row.appendChild(text("td", node.kind));
  row.appendChild(text("td", node.link));
  const state = node.enabled ? (node.online ? "online" : "offline") : "disabled";
  row.appendChild(text("td", state, node.online ? "online" : "offline"));
  row.appendChild(text("td", node.last_seen === null ? "never" : ago(now - node.last_seen)));
  row.appendChild(text("td", node.rssi_dbm === null ? "" : node.rssi_dbm + " dBm"));
  row.appendChild(readingsCell(node));
  row.appendChild(aqiCell(node));
  row.appendChild(trafficCell(node));
  return row;
}

function render(doc) {
  const gw = doc.gateway;
  document.getElementById("gateway").textContent = gw.id + " · site " + gw.site +
    " · v" + gw.version;
  const verdict = document.getElementById("verdict");
  verdict.textContent = gw.status === "ok" ? "healthy" :
    "degraded: " + gw.reasons.join("; ");
  verdict.className = "verdict " + gw.status;
  const broker = doc.broker;
  document.getElementById("broker").textContent =
    (broker.connected ? "connected" : "disconnected") + (broker.url ? " · " + broker.url : "") +
    " · " + broker.reconnects + " reconnects" +
    (!broker.connected && broker.last_error ? " · " + broker.last_error : "");
  const journal = doc.journal;
  document.getElementById("journal").textContent = journal.depth + " undelivered · oldest " +
    number(journal.oldest_age_s, 1) + " s · " + number(journal.size_bytes / 1048576, 1) +
    " of " + number(journal.max_bytes / 1048576, 0) + " MiB";
  const ports = Object.entries(doc.ports).map(([port, up]) => port + (up ? " up" : " down"));
  document.getElementById("ports").textContent = ports.length ? ports.join(", ") : "none";
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...doc.nodes.map((node) => nodeRow(node, doc.at)));
  const live = document.getElementById("live");
  live.textContent = "live · updated " + new Date(doc.at * 1000).toISOString();
  live.className = "live";
}

const events = new EventSource("/events");
events.onmessage = (message) => render(JSON.parse(message.data));
events.onerror = () => {
  const live = document.getElementById("live");
  live.textContent = "connection to the gateway lost: retrying";
  live.className = "live lost";
};
