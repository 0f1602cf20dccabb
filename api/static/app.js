// The operators' page: department queues, an order's live timeline, review decisions.
// Plain browser JavaScript against the orderflow HTTP API; no build step. The token is
// kept in localStorage; event streams are read with fetch so the token travels in the
// Authorization header, never in a URL.
"use strict";

const state = {
  department: null,
  orderId: null,
  orderStream: null,
  shopStream: null,
  refreshTimer: null,
};

const $ = (id) => document.getElementById(id);

function token() {
  return localStorage.getItem("orderflow.token") || "";
}

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: "Bearer " + token(),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return data;
}

function duration(seconds) {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Server-sent events over fetch: calls onEvent for each `order_event`, resumes after the
// last event id when the server ends the stream, until `controller` is aborted.
async function follow(path, onEvent, controller) {
  let lastId = null;
  while (!controller.signal.aborted) {
    try {
      const headers = { Authorization: "Bearer " + token() };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await fetch(path, { headers, signal: controller.signal });
      if (!response.ok) {
        say(`stream ${path}: ${response.status}`, true);
        await sleep(5000);
        continue;
      }
      setLive(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = {};
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            if (colon < 0) continue;
            fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
          }
          if (fields.event === "order_event" && fields.data) {
            lastId = fields.id;
            onEvent(JSON.parse(fields.data));
          }
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await sleep(1000);
  }
}

function setLive(on) {
  const badge = $("live");
  badge.textContent = on ? "live" : "offline";
  badge.className = on ? "badge on" : "badge";
}

// ---------------------------------------------------------------- department queues
async function loadDepartments() {
  const box = $("departments");
  box.textContent = "";
  let departments;
  try {
    departments = await api("GET", "/departments");
  } catch (error) {
    say(`departments: ${error.message}`, true);
    return;
  }
  for (const d of departments) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.department = d.department;
    button.id = `dept-${d.department}`;
    button.className = d.department === state.department ? "active" : "";
    button.innerHTML = "";
    button.append(`${d.name} (${d.waiting}`);
    if (d.overdue) {
      const late = document.createElement("span");
      late.className = "overdue";
      late.textContent = `, ${d.overdue} overdue`;
      button.append(late);
    }
    button.append(")");
    button.addEventListener("click", () => showQueue(d.department));
    box.append(button);
  }
}

async function showQueue(department) {
  state.department = department;
  for (const b of document.querySelectorAll("#departments button")) {
    b.className = b.dataset.department === department ? "active" : "";
  }
  const body = document.querySelector("#queue tbody");
  let queue;
  try {
    queue = await api("GET", `/departments/${department}/queue`);
  } catch (error) {
    $("queue-title").textContent = department;
    body.textContent = "";
    say(`${department} queue: ${error.message}`, true);
    return;
  }
  $("queue-title").textContent = `${queue.name}: ${queue.items.length} waiting, ${queue.overdue} overdue`;
  body.textContent = "";
  for (const item of queue.items) {
    const row = document.createElement("tr");
    row.dataset.orderId = item.order_id || "";
    row.className = item.overdue ? "overdue" : "";
    const cells = [item.kind.replace("_", " "), null, item.status, duration(item.waited_seconds), `${duration(item.sla_seconds)}${item.overdue ? " (overdue)" : ""}`];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      if (i === 1) {
        if (item.order_id) {
          const link = document.createElement("a");
          link.className = "order-link";
          link.textContent = item.order_id;
          link.addEventListener("click", () => openOrder(item.order_id));
          cell.append(link);
          if (item.ref !== item.order_id) cell.append(` (${item.ref})`);
        } else {
          cell.textContent = `${item.ref}${item.details.sku ? " " + item.details.sku : ""}`;
        }
      } else {
        cell.textContent = text;
      }
      row.append(cell);
    });
    body.append(row);
  }
}

function refreshSoon() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    loadDepartments();
    if (state.department) showQueue(state.department);
  }, 300);
}

// ---------------------------------------------------------------- one order
async function openOrder(orderId) {
  orderId = orderId.trim();
  if (!orderId) return;
  if (state.orderStream) state.orderStream.abort();
  state.orderId = orderId;
  $("order-id").value = orderId;
  $("timeline").textContent = "";
  let order;
  try {
    order = await api("GET", `/orders/${encodeURIComponent(orderId)}`);
  } catch (error) {
    $("order").hidden = true;
    say(`order ${orderId}: ${error.message}`, true);
    return;
  }
  $("order").hidden = false;
  $("order-title").textContent = `Order ${orderId}`;
  showStatus(order.status);
  $("order-facts").textContent = [
    order.order_type && `type ${order.order_type}`,
    order.department && `department ${order.department}`,
    order.risk_score !== null && `risk ${order.risk_score.toFixed(0)}`,
    order.total && `${order.total} ${order.currency}`,
    order.carrier && `carrier ${order.carrier} ${order.tracking_number}`,
  ].filter(Boolean).join(" · ");
  const reasons = $("risk-reasons");
  reasons.textContent = "";
  for (const reason of order.risk_reasons) {
    const item = document.createElement("li");
    item.textContent = `${reason.message} (${reason.points})`;
    reasons.append(item);
  }
  showReviewFacts(orderId, order.status);
  // The stream sends the whole history first, then each new event: the same events the
  // customer's own page shows.
  const controller = new AbortController();
  state.orderStream = controller;
  follow(`/orders/${encodeURIComponent(orderId)}/events/stream`, addEvent, controller);
}

// The facts a reviewer decides with, beside the score and reasons: the order's lines,
// total, addresses and payment, and the customer's history in numbers.
async function showReviewFacts(orderId, status) {
  const box = $("review-facts");
  box.textContent = "";
  if (status !== "PENDING_REVIEW") return;
  let task;
  try {
    task = await api("GET", `/reviews/${encodeURIComponent(orderId)}`);
  } catch (error) {
    say(`review task: ${error.message}`, true);
    return;
  }
  if (orderId !== state.orderId) return;
  const section = (title, rows) => {
    const heading = document.createElement("h4");
    heading.textContent = title;
    const list = document.createElement("ul");
    for (const text of rows) {
      const item = document.createElement("li");
      item.textContent = text;
      list.append(item);
    }
    box.append(heading, list);
  };
  const address = (a) => a ? ["name", "line1", "line2", "postal_code", "city", "country"].map((k) => a[k]).filter(Boolean).join(", ") : "as shipping";
  const h = task.customer_history;
  const amounts = Object.entries(h.amounts).map(([currency, amount]) => `${amount} ${currency}`).join(", ") || "nothing";
  section(`Score ${task.score.toFixed(0)} (version ${task.risk_model_version ?? "settings"})`, [
    `placed ${new Date(task.placed_at).toLocaleString()} via ${task.channel}, due ${new Date(task.due_at).toLocaleString()}`,
  ]);
  section(`Lines · total ${task.total} ${task.currency}`, task.items.map((i) => `${i.quantity} × ${i.sku} ${i.name || ""} @ ${i.unit_price} = ${i.line_total}`));
  section("Addresses and payment", [
    `customer ${task.customer.id} ${task.customer.email}`,
    `ship to ${address(task.shipping_address)}`,
    `bill to ${address(task.billing_address)}`,
    `payment ${task.payment.method} ${task.payment.status} ${task.payment.amount} (${task.payment.transaction_id})`,
  ]);
  section("Customer history", [
    `${h.orders} other order(s) for ${amounts}; first ${h.first_order_at ? new Date(h.first_order_at).toLocaleDateString() : "never"}`,
    `${h.flagged} flagged: ${h.approved} approved, ${h.rejected} rejected, ${h.timed_out} timed out, ${h.awaiting_review} awaiting`,
    `${h.reported_fraud} reported as fraud`,
  ]);
}

function showStatus(status) {
  $("order-status").textContent = status;
  $("review").hidden = status !== "PENDING_REVIEW";
}

function addEvent(event) {
  if (event.order_id !== state.orderId) return;
  const item = document.createElement("li");
  item.dataset.kind = event.kind;
  const when = new Date(event.at).toLocaleTimeString();
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = event.status ? `${event.status} ` : "";
  item.append(`${when} · step ${event.step} ${event.step_name} · `, status, `${event.kind} by ${event.actor}`);
  if (event.details && event.details.note) item.append(` — “${event.details.note}”`);
  $("timeline").append(item);
  if (event.status) showStatus(event.status);
}

async function decide(decision) {
  const note = $("note").value.trim();
  try {
    const result = await api("POST", `/reviews/${encodeURIComponent(state.orderId)}/decision`, {
      decision,
      note: note || null,
    });
    say(`order ${result.order_id}: ${decision}d, now ${result.status}`);
    $("note").value = "";
  } catch (error) {
    say(`decision: ${error.message}`, true);
  }
}

async function raiseIssue() {
  const description = $("issue-description").value.trim();
  const orderId = $("issue-order").value.trim();
  try {
    const issue = await api("POST", "/process-issues", {
      step: Number($("issue-step").value),
      severity: $("issue-severity").value,
      order_id: orderId || null,
      description,
    });
    say(`process issue ${issue.ticket_id} raised with ${issue.department}`);
    $("issue-description").value = "";
    $("issue-order").value = "";
    refreshSoon();
  } catch (error) {
    say(`process issue: ${error.message}`, true);
  }
}

// ---------------------------------------------------------------- start
function start() {
  if (state.shopStream) state.shopStream.abort();
  if (!token()) {
    say("Enter an operator token (e.g. dev-reviewer) to begin.");
    return;
  }
  say("");
  loadDepartments();
  if (state.department) showQueue(state.department);
  const controller = new AbortController();
  state.shopStream = controller;
  follow("/events/stream", refreshSoon, controller);
  if (state.orderId) openOrder(state.orderId);
}

$("token").value = token();
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("orderflow.token", $("token").value.trim());
  start();
});
$("order-form").addEventListener("submit", (e) => {
  e.preventDefault();
  openOrder($("order-id").value);
});
$("issue-form").addEventListener("submit", (e) => {
  e.preventDefault();
  raiseIssue();
});
$("approve").addEventListener("click", () => decide("approve"));
$("reject").addEventListener("click", () => decide("reject"));
start();
