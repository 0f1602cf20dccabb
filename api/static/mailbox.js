// The admin mailbox page: what the embedded mail server received (through the API's
// /mailbox/messages), one message's HTML in a fully sandboxed iframe or its text, and the
// outbox with a retry button for failed mails. Same token handling as the operators' page
// (localStorage, sent as the Bearer token); all text is set as text, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { selected: null, message: null };

function token() {
  return localStorage.getItem("orderflow.token") || "";
}

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: "Bearer " + token() },
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

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.append(td);
  return td;
}

// ---------------------------------------------------------------- mailbox
async function loadMessages() {
  const to = $("filter-to").value.trim();
  const query = to ? `?to=${encodeURIComponent(to)}` : "";
  const body = document.querySelector("#messages tbody");
  let messages;
  try {
    messages = await api("GET", `/mailbox/messages${query}`);
  } catch (error) {
    body.textContent = "";
    say(`mailbox: ${error.message}`, true);
    return;
  }
  say(`${messages.length} messages${to ? " to " + to : ""}`);
  body.textContent = "";
  for (const m of messages) {
    const row = document.createElement("tr");
    row.dataset.id = m.id;
    if (m.id === state.selected) row.className = "selected";
    cell(row, m.id);
    cell(row, m.received_at.replace("T", " ").slice(0, 19));
    cell(row, m.to.join(", "));
    cell(row, m.order_id);
    cell(row, m.subject);
    row.addEventListener("click", () => showMessage(m.id));
    body.append(row);
  }
}

async function showMessage(id) {
  let message;
  try {
    message = await api("GET", `/mailbox/messages/${encodeURIComponent(id)}`);
  } catch (error) {
    say(`message ${id}: ${error.message}`, true);
    return;
  }
  state.selected = id;
  state.message = message;
  for (const row of document.querySelectorAll("#messages tbody tr")) {
    row.className = Number(row.dataset.id) === id ? "selected" : "";
  }
  $("message-title").textContent = `Message ${id}: ${message.subject}`;
  const headers = document.querySelector("#message-headers tbody");
  headers.textContent = "";
  const wanted = ["From", "To", "Subject", "Date", "Message-ID", "X-Orderflow-Order", "X-Orderflow-Notification"];
  for (const [name, value] of message.headers) {
    if (!wanted.includes(name)) continue;
    const row = document.createElement("tr");
    cell(row, name);
    cell(row, value);
    headers.append(row);
  }
  $("message-view").hidden = false;
  view(message.html ? "html" : "text");
}

function view(kind) {
  const message = state.message;
  if (!message) return;
  const frame = $("message-html");
  const text = $("message-text");
  // srcdoc, not a URL: the part never leaves this page, and the empty sandbox keeps any
  // script or form in it inert.
  frame.srcdoc = kind === "html" ? message.html || "" : "";
  frame.hidden = kind !== "html";
  text.textContent = message.text || "(no text part)";
  text.hidden = kind !== "text";
  $("show-html").className = kind === "html" ? "active" : "";
  $("show-text").className = kind === "text" ? "active" : "";
  $("show-html").disabled = !message.html;
}

// ---------------------------------------------------------------- outbox
async function loadOutbox() {
  const status = $("outbox-status").value;
  const body = document.querySelector("#outbox tbody");
  let rows;
  try {
    rows = await api("GET", `/mail/outbox${status ? "?status=" + status : ""}`);
  } catch (error) {
    body.textContent = "";
    say(`outbox: ${error.message}`, true);
    return;
  }
  body.textContent = "";
  for (const r of rows) {
    const row = document.createElement("tr");
    cell(row, r.id);
    cell(row, r.status);
    cell(row, r.attempts);
    cell(row, r.kind);
    cell(row, r.order_id);
    cell(row, r.recipient);
    cell(row, r.last_error).className = "error-text";
    const action = cell(row, "");
    if (r.status === "failed") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Retry";
      button.addEventListener("click", () => retry(r.id));
      action.append(button);
    }
    body.append(row);
  }
}

async function retry(id) {
  try {
    const row = await api("POST", `/mail/outbox/${encodeURIComponent(id)}/retry`);
    say(`mail ${row.id} is ${row.status} again: it is sent on the next round`);
  } catch (error) {
    say(`retry ${id}: ${error.message}`, true);
  }
  loadOutbox();
}

// ---------------------------------------------------------------- start
function start() {
  if (!token()) {
    say("Enter the admin token (e.g. dev-admin) to read the mailbox.");
    return;
  }
  loadMessages();
  loadOutbox();
}

$("token").value = token();
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("orderflow.token", $("token").value.trim());
  start();
});
$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadMessages();
});
$("refresh").addEventListener("click", () => {
  loadMessages();
  loadOutbox();
});
$("outbox-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadOutbox();
});
$("show-html").addEventListener("click", () => view("html"));
$("show-text").addEventListener("click", () => view("text"));
start();
