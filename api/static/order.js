// The customer's order page: the order's status over the eight steps, live, and what the
// customer may do with it. Plain browser JavaScript against the orderflow HTTP API.
//
// The page is opened as /orders/<id>/page#token=cust_...: the token is in the fragment,
// which browsers never send to a server. The script moves it to sessionStorage (so a reload
// still works) and out of the address bar (so it is not shared by copying the address), and
// sends it only as the Bearer token of its own API calls. Event streams are read with fetch,
// not EventSource, because EventSource cannot send that header.
"use strict";

const $ = (id) => document.getElementById(id);

const STEPS = [
  "generation", "classification", "review", "inventory",
  "picking_packing", "delivery", "tracking", "completion",
];
// orderflow/models/status.py STEP_OF_STATUS; CANCELLED belongs to the step it interrupted.
const STEP_OF_STATUS = {
  RECEIVED: 1, CLASSIFIED: 2, PENDING_REVIEW: 3, APPROVED: 3, REJECTED: 3,
  BACKORDERED: 4, RESERVED: 4, PICKING: 5, PACKED: 5, SHIPPED: 6,
  IN_TRANSIT: 7, OUT_FOR_DELIVERY: 7, DELIVERED: 7, COMPLETED: 8,
};
const STOPPED = new Set(["REJECTED", "CANCELLED"]);

// ------------------------------------------------------------------ words
// English first; a missing translation falls back to it.
const WORDS = {
  en: {
    title: "Your order", order: "Order", live: "live", offline: "offline",
    loading: "Loading your order…",
    no_token: "This page opens with the link in your order e-mail. Please use that link to see your order.",
    bad_token: "This link does not open this order. Please use the link in your latest e-mail about the order.",
    not_found: "We cannot find this order.",
    load_failed: "Your order cannot be loaded just now ({detail}). Trying again…",
    step_caption: "Step {n} of 8: {name}",
    step_generation: "Order placed", step_classification: "Sorting", step_review: "Check",
    step_inventory: "Reserving items", step_picking_packing: "Picking and packing",
    step_delivery: "Handing to the carrier", step_tracking: "On its way", step_completion: "Completion",
    status_RECEIVED: "Received", status_CLASSIFIED: "Received", status_PENDING_REVIEW: "Being checked",
    status_APPROVED: "Accepted", status_BACKORDERED: "Waiting for stock", status_RESERVED: "Items reserved",
    status_PICKING: "Being picked", status_PACKED: "Packed", status_SHIPPED: "Shipped",
    status_IN_TRANSIT: "In transit", status_OUT_FOR_DELIVERY: "Out for delivery",
    status_DELIVERED: "Delivered", status_COMPLETED: "Completed", status_REJECTED: "Not accepted",
    status_CANCELLED: "Cancelled",
    explain_PENDING_REVIEW: "We are checking your order before we pack it. This usually takes a few hours.",
    explain_BACKORDERED: "Some items are out of stock. We send your order as soon as they arrive.",
    explain_DELIVERED: "Your parcel has been delivered.",
    explain_COMPLETED: "Your order is complete. Thank you for shopping with us!",
    explain_REJECTED: "We could not accept this order. Any payment is refunded in full.",
    explain_CANCELLED: "This order is cancelled. Any payment is refunded in full.",
    actions: "What you can do", no_actions: "There is nothing you need to do right now.",
    confirm_question: "Has your parcel arrived?", confirm_button: "Yes, I received my order",
    confirmed: "Thank you for confirming that your order arrived.",
    review_heading: "Review your order", rating: "Your rating (1 to 5)", comment: "Comment (optional)",
    review_button: "Send review", reviewed: "Thank you for your review!",
    feedback_heading: "A question or a problem?", category: "About",
    category_delivery: "Delivery", category_product: "A product", category_payment: "Payment",
    category_other: "Something else", message: "Your message", feedback_button: "Send message",
    ticket: "Thank you. Your ticket number is {ticket}; we will answer by e-mail.",
    ticket_line: "Ticket {ticket} ({category}): {status}", ticket_open: "open", ticket_resolved: "answered",
    cancel_button: "Cancel order", cancel_reason: "Why do you want to cancel?",
    cancel_confirm: "Cancel my order", cancel_keep: "Keep my order",
    cancelled: "Your order is cancelled. Refunded: {amount}.",
    return_heading: "Return items", return_quantity: "How many to return",
    return_reason: "Why are you returning them?", return_button: "Ask for a return",
    return_none: "Choose at least one item to return.",
    return_asked: "Return {id} is on its way: we send you the return label by e-mail.",
    return_waits: "Return {id} is being checked by our customer service; we will write to you.",
    return_resolution: "Money back or a replacement",
    resolution_refund: "money back", resolution_exchange: "replacement",
    return_exchange_asked: "For the items you exchange, we send you a replacement order, {order}, at no charge; its own e-mail has the link to follow it.",
    return_exchange_waits: "If the return is approved, we send you the items you exchange as order {order}, at no charge; its own e-mail has the link to follow it.",
    return_line: "Return {id}: {status}", returns_heading: "Your returns",
    return_item: "{quantity} × {name}: {resolution}",
    return_replacement: "Replacement: order {order} (its own e-mail has the link to follow it)",
    return_REQUESTED: "being checked", return_APPROVED: "approved", return_LABEL_SENT: "label sent",
    return_IN_TRANSIT: "on its way back", return_ARRIVED: "arrived, being inspected",
    return_INSPECTED: "inspected", return_REFUNDED: "refunded", return_CLOSED: "closed",
    return_REJECTED: "not accepted", return_EXCHANGED: "exchanged",
    event_return_label_booked: "A return label was sent", event_return_in_transit: "Your return is on its way back",
    event_return_arrived: "Your return arrived", event_return_refunded: "Your return was refunded",
    event_return_not_sent_back: "Your return was closed",
    event_return_exchange_placed: "A replacement order was placed for your exchange",
    event_return_exchanged: "Your return was exchanged",
    event_pre_order_waiting: "A pre-order: it ships after the release on {date}",
    event_pre_order_release_moved: "The release date moved to {date}",
    event_pre_order_released: "Released: your order is being prepared",
    refused: "Not possible: {detail}", sending: "Sending…",
    items: "Items", item: "Item", quantity: "Qty", price: "Price", total: "Total",
    shipping_to: "Shipping to", delivery: "Delivery", carrier: "Carrier",
    tracking_number: "Tracking number", expected_delivery: "Expected delivery", not_yet: "not yet known",
    timeline: "What happened so far",
    event_order_received: "We received your order", event_order_classified: "Your order was sorted",
    event_review_flagged: "Your order is being checked", event_auto_approved: "Your order was accepted",
    event_review_approved: "Your order was accepted", event_review_rejected: "Your order was not accepted",
    event_review_timeout: "Your order could not be checked in time", event_review_escalated: "The check of your order takes longer",
    event_stock_reserved: "Your items are reserved", event_backordered: "Some items are out of stock",
    event_backorder_reminder: "Still waiting for stock", event_pick_task_opened: "The warehouse is picking your items",
    event_pick_task_overdue: "Picking takes longer than planned", event_picked: "Your items were picked",
    event_packed: "Your parcel is packed", event_shipped: "Your parcel was handed to the carrier",
    event_booking_refused: "The carrier could not take the parcel yet; we are on it",
    event_tracking_in_transit: "Your parcel is in transit", event_tracking_out_for_delivery: "Your parcel is out for delivery",
    event_tracking_delivered: "Your parcel was delivered", event_delivery_follow_up: "We asked the carrier where your parcel is",
    event_parcel_lost: "Your parcel seems lost; we are on it", event_reshipped: "We sent a replacement parcel",
    event_replacement_stock_taken: "Replacement items are reserved", event_lost_parcel_refunded: "Your payment is refunded (parcel lost)",
    event_order_completed: "Your order is complete", event_review_received: "Thank you for your review",
    event_feedback_received: "We received your message", event_feedback_resolved: "We answered your message",
    event_order_cancelled: "Your order was cancelled", event_payment_refunded: "Your payment was refunded",
    event_stock_released: "Reserved items were released", event_pick_task_cancelled: "Picking was stopped",
    event_review_task_closed: "The check of your order was closed",
  },
  de: {
    title: "Ihre Bestellung", order: "Bestellung", live: "live", offline: "offline",
    loading: "Ihre Bestellung wird geladen …",
    no_token: "Diese Seite öffnet sich über den Link in Ihrer Bestell-E-Mail. Bitte verwenden Sie diesen Link.",
    bad_token: "Dieser Link öffnet diese Bestellung nicht. Bitte verwenden Sie den Link aus Ihrer letzten E-Mail zur Bestellung.",
    not_found: "Wir finden diese Bestellung nicht.",
    load_failed: "Ihre Bestellung kann gerade nicht geladen werden ({detail}). Neuer Versuch …",
    step_caption: "Schritt {n} von 8: {name}",
    step_generation: "Bestellung", step_classification: "Einordnung", step_review: "Prüfung",
    step_inventory: "Reservierung", step_picking_packing: "Kommissionierung und Verpackung",
    step_delivery: "Übergabe an den Versand", step_tracking: "Unterwegs", step_completion: "Abschluss",
    status_RECEIVED: "Eingegangen", status_CLASSIFIED: "Eingegangen", status_PENDING_REVIEW: "Wird geprüft",
    status_APPROVED: "Angenommen", status_BACKORDERED: "Wartet auf Ware", status_RESERVED: "Reserviert",
    status_PICKING: "Wird zusammengestellt", status_PACKED: "Verpackt", status_SHIPPED: "Versandt",
    status_IN_TRANSIT: "Unterwegs", status_OUT_FOR_DELIVERY: "In Zustellung",
    status_DELIVERED: "Zugestellt", status_COMPLETED: "Abgeschlossen", status_REJECTED: "Nicht angenommen",
    status_CANCELLED: "Storniert",
    explain_COMPLETED: "Ihre Bestellung ist abgeschlossen. Danke für Ihren Einkauf!",
    explain_REJECTED: "Wir konnten diese Bestellung nicht annehmen. Bezahltes erstatten wir vollständig.",
    explain_CANCELLED: "Diese Bestellung ist storniert. Bezahltes erstatten wir vollständig.",
    actions: "Was Sie tun können", no_actions: "Im Moment ist nichts zu tun.",
    confirm_question: "Ist Ihr Paket angekommen?", confirm_button: "Ja, ich habe meine Bestellung erhalten",
    confirmed: "Danke für Ihre Bestätigung.",
    review_heading: "Bestellung bewerten", rating: "Ihre Bewertung (1 bis 5)", comment: "Kommentar (optional)",
    review_button: "Bewertung senden", reviewed: "Danke für Ihre Bewertung!",
    feedback_heading: "Eine Frage oder ein Problem?", category: "Worum geht es?",
    category_delivery: "Lieferung", category_product: "Ein Produkt", category_payment: "Zahlung",
    category_other: "Etwas anderes", message: "Ihre Nachricht", feedback_button: "Nachricht senden",
    ticket: "Danke. Ihre Ticketnummer ist {ticket}; wir antworten per E-Mail.",
    ticket_line: "Ticket {ticket} ({category}): {status}", ticket_open: "offen", ticket_resolved: "beantwortet",
    cancel_button: "Bestellung stornieren", cancel_reason: "Warum möchten Sie stornieren?",
    cancel_confirm: "Bestellung stornieren", cancel_keep: "Bestellung behalten",
    cancelled: "Ihre Bestellung ist storniert. Erstattet: {amount}.",
    return_heading: "Artikel zurücksenden", return_quantity: "Wie viele zurücksenden",
    return_reason: "Warum senden Sie sie zurück?", return_button: "Rücksendung anfragen",
    return_none: "Wählen Sie mindestens einen Artikel zum Zurücksenden.",
    return_asked: "Rücksendung {id} ist angelegt: Das Rücksendeetikett kommt per E-Mail.",
    return_waits: "Rücksendung {id} wird von unserem Kundenservice geprüft; wir schreiben Ihnen.",
    return_resolution: "Geld zurück oder Ersatz",
    resolution_refund: "Geld zurück", resolution_exchange: "Ersatz",
    return_exchange_asked: "Für den Umtausch schicken wir Ihnen kostenlos eine Ersatzbestellung, {order}; deren eigene E-Mail enthält den Link, um sie zu verfolgen.",
    return_exchange_waits: "Wird die Rücksendung genehmigt, schicken wir Ihnen die umgetauschten Artikel kostenlos als Bestellung {order}; deren eigene E-Mail enthält den Link, um sie zu verfolgen.",
    return_line: "Rücksendung {id}: {status}", returns_heading: "Ihre Rücksendungen",
    return_item: "{quantity} × {name}: {resolution}",
    return_replacement: "Ersatz: Bestellung {order} (den Link finden Sie in deren eigener E-Mail)",
    return_REQUESTED: "wird geprüft", return_APPROVED: "genehmigt", return_LABEL_SENT: "Etikett verschickt",
    return_IN_TRANSIT: "auf dem Rückweg", return_ARRIVED: "angekommen, wird geprüft",
    return_INSPECTED: "geprüft", return_REFUNDED: "erstattet", return_CLOSED: "geschlossen",
    return_REJECTED: "nicht angenommen", return_EXCHANGED: "umgetauscht",
    event_return_label_booked: "Ein Rücksendeetikett wurde verschickt", event_return_in_transit: "Ihre Rücksendung ist unterwegs",
    event_return_arrived: "Ihre Rücksendung ist angekommen", event_return_refunded: "Ihre Rücksendung wurde erstattet",
    event_return_not_sent_back: "Ihre Rücksendung wurde geschlossen",
    event_return_exchange_placed: "Für Ihren Umtausch wurde eine Ersatzbestellung angelegt",
    event_return_exchanged: "Ihre Rücksendung wurde umgetauscht",
    event_pre_order_waiting: "Vorbestellung: Versand nach dem Erscheinen am {date}",
    event_pre_order_release_moved: "Der Erscheinungstermin wurde auf {date} verschoben",
    event_pre_order_released: "Erschienen: Ihre Bestellung wird vorbereitet",
    refused: "Nicht möglich: {detail}", sending: "Wird gesendet …",
    items: "Artikel", item: "Artikel", quantity: "Menge", price: "Preis", total: "Summe",
    shipping_to: "Lieferadresse", delivery: "Lieferung", carrier: "Versanddienst",
    tracking_number: "Sendungsnummer", expected_delivery: "Voraussichtliche Zustellung", not_yet: "noch nicht bekannt",
    timeline: "Bisheriger Verlauf",
    event_order_received: "Wir haben Ihre Bestellung erhalten", event_packed: "Ihr Paket ist verpackt",
    event_shipped: "Ihr Paket wurde dem Versanddienst übergeben", event_tracking_delivered: "Ihr Paket wurde zugestellt",
    event_order_completed: "Ihre Bestellung ist abgeschlossen", event_order_cancelled: "Ihre Bestellung wurde storniert",
    event_feedback_received: "Wir haben Ihre Nachricht erhalten", event_review_received: "Danke für Ihre Bewertung",
  },
  "zh-CN": {
    title: "您的订单", order: "订单", live: "实时", offline: "离线",
    loading: "正在加载您的订单…",
    no_token: "请通过订单邮件中的链接打开此页面。",
    bad_token: "此链接无法打开该订单。请使用您最近一封订单邮件中的链接。",
    not_found: "找不到该订单。",
    load_failed: "暂时无法加载您的订单（{detail}）。正在重试…",
    step_caption: "第 {n} 步（共 8 步）：{name}",
    step_generation: "下单", step_classification: "分类", step_review: "审核",
    step_inventory: "预留商品", step_picking_packing: "拣货与包装",
    step_delivery: "交付承运商", step_tracking: "运输途中", step_completion: "完成",
    status_RECEIVED: "已接收", status_CLASSIFIED: "已接收", status_PENDING_REVIEW: "审核中",
    status_APPROVED: "已接受", status_BACKORDERED: "等待到货", status_RESERVED: "已预留",
    status_PICKING: "拣货中", status_PACKED: "已包装", status_SHIPPED: "已发货",
    status_IN_TRANSIT: "运输中", status_OUT_FOR_DELIVERY: "派送中",
    status_DELIVERED: "已送达", status_COMPLETED: "已完成", status_REJECTED: "未被接受",
    status_CANCELLED: "已取消",
    explain_COMPLETED: "您的订单已完成。感谢您的惠顾！",
    explain_REJECTED: "我们无法接受此订单。已付款项将全额退还。",
    explain_CANCELLED: "此订单已取消。已付款项将全额退还。",
    actions: "您可以", no_actions: "目前无需您进行任何操作。",
    confirm_question: "您的包裹到了吗？", confirm_button: "是的，我已收到订单",
    confirmed: "感谢您的确认。",
    review_heading: "评价您的订单", rating: "您的评分（1 到 5）", comment: "评论（可选）",
    review_button: "提交评价", reviewed: "感谢您的评价！",
    feedback_heading: "有疑问或问题？", category: "关于",
    category_delivery: "配送", category_product: "商品", category_payment: "付款",
    category_other: "其他", message: "您的留言", feedback_button: "发送",
    ticket: "谢谢。您的工单号是 {ticket}，我们会通过邮件回复。",
    ticket_line: "工单 {ticket}（{category}）：{status}", ticket_open: "处理中", ticket_resolved: "已回复",
    cancel_button: "取消订单", cancel_reason: "您为什么要取消？",
    cancel_confirm: "取消我的订单", cancel_keep: "保留订单",
    cancelled: "您的订单已取消。退款：{amount}。",
    return_heading: "退货", return_quantity: "退货数量",
    return_reason: "退货原因", return_button: "申请退货",
    return_none: "请至少选择一件要退的商品。",
    return_asked: "退货 {id} 已受理：退货标签将通过电子邮件发送给您。",
    return_waits: "退货 {id} 正在由客服审核，我们会写信告知您。",
    return_resolution: "退款或换货",
    resolution_refund: "退款", resolution_exchange: "换货",
    return_exchange_asked: "换货的商品将作为订单 {order} 免费寄给您；该订单自己的邮件中有查看它的链接。",
    return_exchange_waits: "退货获批后，换货的商品将作为订单 {order} 免费寄给您；该订单自己的邮件中有查看它的链接。",
    return_line: "退货 {id}：{status}", returns_heading: "您的退货",
    return_item: "{quantity} × {name}：{resolution}",
    return_replacement: "换货：订单 {order}（查看链接见该订单自己的邮件）",
    return_REQUESTED: "审核中", return_APPROVED: "已批准", return_LABEL_SENT: "标签已发送",
    return_IN_TRANSIT: "寄回途中", return_ARRIVED: "已到达，检验中",
    return_INSPECTED: "已检验", return_REFUNDED: "已退款", return_CLOSED: "已关闭",
    return_REJECTED: "未受理", return_EXCHANGED: "已换货",
    event_return_label_booked: "退货标签已发送", event_return_in_transit: "您的退货正在寄回",
    event_return_arrived: "您的退货已到达", event_return_refunded: "您的退货已退款",
    event_return_not_sent_back: "您的退货已关闭",
    event_return_exchange_placed: "已为您的换货创建补发订单",
    event_return_exchanged: "您的退货已完成换货",
    event_pre_order_waiting: "预购：将在 {date} 发布后发货",
    event_pre_order_release_moved: "发布日期已改为 {date}",
    event_pre_order_released: "已发布：正在为您备货",
    refused: "无法完成：{detail}", sending: "正在发送…",
    items: "商品", item: "商品", quantity: "数量", price: "价格", total: "合计",
    shipping_to: "收货地址", delivery: "配送", carrier: "承运商",
    tracking_number: "运单号", expected_delivery: "预计送达", not_yet: "暂未确定",
    timeline: "订单进度",
    event_order_received: "我们已收到您的订单", event_shipped: "您的包裹已交给承运商",
    event_tracking_delivered: "您的包裹已送达", event_order_completed: "您的订单已完成",
    event_order_cancelled: "您的订单已取消",
  },
};

const state = {
  orderId: null,
  token: "",
  locale: "en",
  order: null,
  lastStep: null,
  seen: new Set(),
  stream: null,
  refreshTimer: null,
  returnsTimer: null,
  stopped: false,
};

function t(key, values = {}) {
  const words = WORDS[state.locale] || WORDS.en;
  let text = words[key] !== undefined ? words[key] : WORDS.en[key];
  if (text === undefined) return null;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

function translatePage() {
  document.documentElement.lang = state.locale;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    const text = t(node.dataset.i18n);
    if (text !== null) node.textContent = text;
  }
  document.title = t("title");
}

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text || "";
  box.className = isError ? "error" : "";
}

// ------------------------------------------------------------------ the token
function orderIdFromPath() {
  const match = location.pathname.match(/^\/orders\/([^/]+)\/page\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function storageKey() {
  return `orderflow.order-token.${state.orderId}`;
}

function takeToken() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    try {
      sessionStorage.setItem(storageKey(), fromLink);
      // Out of the address bar, history and bookmarks; the session keeps it for reloads.
      history.replaceState(null, "", location.pathname + location.search);
    } catch (_) {
      // Storage refused (private mode): keep the fragment, or a reload loses the order.
    }
    return fromLink;
  }
  try {
    return sessionStorage.getItem(storageKey()) || "";
  } catch (_) {
    return "";
  }
}

function forgetToken() {
  try {
    sessionStorage.removeItem(storageKey());
  } catch (_) {
    // nothing stored
  }
}

// ------------------------------------------------------------------ the API
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: "Bearer " + state.token,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
    throw new ApiError(response.status, detail || `HTTP ${response.status}`);
  }
  return { status: response.status, data };
}

function orderPath(suffix = "") {
  return `/orders/${encodeURIComponent(state.orderId)}${suffix}`;
}

// A wrong token shows nothing of the order: whatever was on screen goes.
function denied(error) {
  state.stopped = true;
  if (state.stream) state.stream.abort();
  $("order").hidden = true;
  clearOrder();
  if (error.status === 404) {
    say(t("not_found"), true);
  } else {
    forgetToken();
    say(t("bad_token"), true);
  }
}

function isDenial(error) {
  return error instanceof ApiError && [401, 403, 404].includes(error.status);
}

function clearOrder() {
  for (const id of ["order-id", "order-status", "status-text", "progress", "progress-caption",
    "total", "shipping-address", "carrier", "tracking-number", "expected-delivery", "timeline",
    "tickets"]) {
    $(id).textContent = "";
  }
  document.querySelector("#items tbody").textContent = "";
}

// ------------------------------------------------------------------ showing the order
function money(amount, currency) {
  if (amount === null || amount === undefined) return "";
  try {
    return new Intl.NumberFormat(state.locale, { style: "currency", currency }).format(Number(amount));
  } catch (_) {
    return `${amount} ${currency || ""}`.trim();
  }
}

function when(iso, withTime = true) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const options = withTime ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "full" };
  try {
    return new Intl.DateTimeFormat(state.locale, options).format(date);
  } catch (_) {
    return date.toLocaleString();
  }
}

function render(order) {
  if (state.order && state.order.status !== order.status) {
    // A refusal answered the order as it was; once it has moved on, it only confuses.
    for (const output of document.querySelectorAll(".result.error")) {
      output.textContent = "";
      output.className = "result";
    }
  }
  state.order = order;
  if (order.locale && order.locale !== state.locale && WORDS[order.locale]) {
    state.locale = order.locale;
    translatePage();
    rerenderTimeline();
  }
  $("order").hidden = false;
  $("order-id").textContent = order.order_id;
  showStatus(order.status);

  const body = document.querySelector("#items tbody");
  body.textContent = "";
  for (const line of order.items || []) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.append(line.name || line.sku);
    const sku = document.createElement("span");
    sku.className = "sku";
    sku.textContent = line.sku;
    name.append(sku);
    const quantity = document.createElement("td");
    quantity.textContent = `${line.quantity} ×`;
    const price = document.createElement("td");
    price.textContent = money(line.line_total, order.currency);
    row.append(name, quantity, price);
    body.append(row);
  }
  $("total").textContent = money(order.total, order.currency);

  const address = $("shipping-address");
  address.textContent = "";
  const a = order.shipping_address;
  if (a) {
    const lines = [a.name, a.line1, a.line2, `${a.postal_code} ${a.city}`, a.country];
    lines.filter(Boolean).forEach((text, i) => {
      if (i) address.append(document.createElement("br"));
      address.append(text);
    });
  }
  $("carrier").textContent = order.carrier || t("not_yet");
  $("tracking-number").textContent = order.tracking_number || t("not_yet");
  $("expected-delivery").textContent = order.expected_delivery
    ? when(order.expected_delivery, false)
    : t("not_yet");
  showActions(order.actions || {});
  if ((order.actions || {}).return_items) renderReturnLines(order);
}

function showStatus(status) {
  const badge = $("order-status");
  badge.dataset.status = status;
  badge.textContent = t(`status_${status}`) || status;
  const stopped = STOPPED.has(status);
  badge.className = "badge status" + (stopped ? " terminal" : status === "COMPLETED" ? " done" : "");
  const explain = $("status-text");
  explain.textContent = t(`explain_${status}`) || "";
  explain.className = stopped ? "terminal" : "";

  // The bar: steps before the current one done; a stopped order stops where it was.
  let current = STEP_OF_STATUS[status] || state.lastStep || 1;
  if (status === "CANCELLED" && state.lastStep) current = state.lastStep;
  const bar = $("progress");
  bar.textContent = "";
  STEPS.forEach((step, i) => {
    const n = i + 1;
    const item = document.createElement("li");
    item.dataset.step = step;
    if (n < current || (n === current && status === "COMPLETED")) item.className = "done";
    else if (n === current) item.className = stopped ? "stopped" : "current";
    const segment = document.createElement("span");
    segment.className = "bar";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t(`step_${step}`);
    item.append(segment, label);
    item.title = t(`step_${step}`);
    bar.append(item);
  });
  bar.setAttribute("aria-label", t("step_caption", { n: current, name: t(`step_${STEPS[current - 1]}`) }));
  $("progress-caption").textContent = stopped
    ? ""
    : t("step_caption", { n: current, name: t(`step_${STEPS[current - 1]}`) });
}

function showActions(actions) {
  $("cancel-box").hidden = !actions.cancel;
  $("feedback-form").hidden = !actions.feedback;
  $("confirm-box").hidden = !actions.confirm_receipt;
  $("review-form").hidden = !actions.review;
  $("return-form").hidden = !actions.return_items;
  if (!actions.cancel) $("cancel-form").hidden = true;
  $("no-actions").hidden = Boolean(
    actions.cancel || actions.feedback || actions.confirm_receipt || actions.review
      || actions.return_items,
  );
}

// One row per line of the order: how many of it to send back (none by default), and whether
// the customer wants the money back (the default) or the same item again.
function renderReturnLines(order) {
  const body = document.querySelector("#return-lines tbody");
  if (body.dataset.order === order.order_id) return;
  body.dataset.order = order.order_id;
  body.textContent = "";
  for (const line of order.items || []) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = line.name || line.sku;
    const cell = document.createElement("td");
    const input = document.createElement("input");
    input.type = "number";
    input.min = "0";
    input.max = String(line.quantity);
    input.value = "0";
    input.dataset.sku = line.sku;
    input.setAttribute("aria-label", `${t("return_quantity")}: ${line.name || line.sku}`);
    cell.append(input);
    const choice = document.createElement("td");
    const select = document.createElement("select");
    select.dataset.sku = line.sku;
    select.setAttribute("aria-label", `${t("return_resolution")}: ${line.name || line.sku}`);
    for (const resolution of ["refund", "exchange"]) {
      const option = document.createElement("option");
      option.value = resolution;
      // Through data-i18n, so that a language chosen by the order later renames them too.
      option.dataset.i18n = `resolution_${resolution}`;
      option.textContent = t(`resolution_${resolution}`);
      select.append(option);
    }
    choice.append(select);
    row.append(name, cell, choice);
    body.append(row);
  }
}

function itemName(sku) {
  const line = ((state.order && state.order.items) || []).find((item) => item.sku === sku);
  return (line && line.name) || sku;
}

async function loadReturns() {
  try {
    const { data } = await api("GET", orderPath("/returns"));
    const list = $("returns");
    list.textContent = "";
    for (const item of data) {
      const entry = document.createElement("li");
      entry.dataset.returnId = item.return_id;
      entry.append(t("return_line", {
        id: item.return_id,
        status: t(`return_${item.status}`) || item.status,
      }));
      const lines = document.createElement("ul");
      for (const line of item.lines || []) {
        const row = document.createElement("li");
        row.dataset.sku = line.sku;
        row.dataset.resolution = line.resolution || "refund";
        row.textContent = t("return_item", {
          quantity: line.quantity,
          name: itemName(line.sku),
          resolution: t(`resolution_${line.resolution || "refund"}`) || line.resolution,
        });
        lines.append(row);
      }
      entry.append(lines);
      if (item.replacement_order_id) {
        // No link: the replacement's page opens only with its own token, which only the
        // server can make; the replacement's confirmation e-mail carries that link.
        const replacement = document.createElement("p");
        replacement.className = "replacement";
        replacement.dataset.orderId = item.replacement_order_id;
        replacement.textContent = t("return_replacement", { order: item.replacement_order_id });
        entry.append(replacement);
      }
      list.append(entry);
    }
    $("returns-box").hidden = data.length === 0;
  } catch (error) {
    if (isDenial(error)) denied(error);
  }
}

function eventText(event) {
  // A pre-order's events name the release date they wait for.
  const release = (event.details || {}).release_at;
  const label = t(`event_${event.kind}`, { date: release ? when(release, false) : "—" });
  if (label) return label;
  // An event this page has no words for: its kind, readable.
  const words = event.kind.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function eventItem(event) {
  const item = document.createElement("li");
  item.dataset.kind = event.kind;
  item.dataset.id = event.id;
  const time = document.createElement("time");
  time.dateTime = event.at;
  time.textContent = when(event.at);
  item.append(time, eventText(event));
  const d = event.details || {};
  const extra = [d.tracking_number, d.ticket_id, d.replacement_order_id].filter(Boolean).join(" · ");
  if (extra) item.append(` (${extra})`);
  return item;
}

const events = [];

// The status shown is always the API's: the stream replays the whole history first, and
// showing each old status in turn would run the bar backwards and forwards.
function addEvent(event) {
  if (state.seen.has(event.id)) return;
  state.seen.add(event.id);
  events.push(event);
  $("timeline").append(eventItem(event));
  if (event.step) state.lastStep = event.step;
  refreshSoon();
  if (event.kind.startsWith("return_")) {
    clearTimeout(state.returnsTimer);
    state.returnsTimer = setTimeout(loadReturns, 250);
  }
}

function rerenderTimeline() {
  const list = $("timeline");
  list.textContent = "";
  for (const event of events) list.append(eventItem(event));
}

// Events tell that something happened; the order (actions, carrier, ...) is read again.
function refreshSoon() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 250);
}

async function refresh() {
  if (state.stopped) return;
  const known = events.length;
  try {
    const { data } = await api("GET", orderPath());
    // Something happened while we asked: this answer may be older than it; ask again.
    if (events.length !== known) {
      refreshSoon();
      return;
    }
    render(data);
  } catch (error) {
    if (isDenial(error)) denied(error);
  }
}

async function loadTickets() {
  try {
    const { data } = await api("GET", orderPath("/feedback"));
    $("tickets").textContent = "";
    for (const ticket of data) showTicket(ticket);
  } catch (error) {
    if (isDenial(error)) denied(error);
  }
}

function showTicket(ticket) {
  const id = `ticket-${ticket.ticket_id}`;
  let item = document.getElementById(id);
  if (!item) {
    item = document.createElement("li");
    item.id = id;
    $("tickets").append(item);
  }
  item.textContent = t("ticket_line", {
    ticket: ticket.ticket_id,
    category: t(`category_${ticket.category}`) || ticket.category,
    status: t(`ticket_${ticket.status}`) || ticket.status,
  });
}

// ------------------------------------------------------------------ live
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function setLive(on) {
  const badge = $("live");
  badge.textContent = t(on ? "live" : "offline");
  badge.className = on ? "badge on" : "badge";
}

// Server-sent events over fetch; after a drop, resumes after the last event it saw
// (Last-Event-ID), waiting longer after each failure in a row.
async function follow(controller) {
  let lastId = null;
  let pause = 1000;
  while (!controller.signal.aborted && !state.stopped) {
    try {
      const headers = { Authorization: "Bearer " + state.token };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await fetch(orderPath("/events/stream"), {
        headers,
        signal: controller.signal,
        cache: "no-store",
      });
      if ([401, 403, 404].includes(response.status)) {
        denied(new ApiError(response.status, ""));
        return;
      }
      if (response.ok) {
        setLive(true);
        pause = 1000;
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
              addEvent(JSON.parse(fields.data));
            }
          }
        }
        // The server ends streams now and then: what happened meanwhile comes on resume.
        refreshSoon();
      }
    } catch (_) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await sleep(pause);
    pause = Math.min(pause * 2, 15000);
  }
}

// ------------------------------------------------------------------ the customer's requests
async function send(button, output, request, onDone) {
  button.disabled = true;
  output.className = "result";
  output.textContent = t("sending");
  try {
    const result = await request();
    output.className = "result ok";
    output.textContent = onDone(result);
  } catch (error) {
    if (isDenial(error) && error.status !== 404) {
      denied(error);
      return;
    }
    // The API's own words: it has the final say on what the order takes now.
    output.className = "result error";
    output.textContent = t("refused", { detail: error.detail || error.message });
  } finally {
    button.disabled = false;
  }
  refreshSoon();
}

function newRequestKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

let feedbackKey = newRequestKey();

function wireActions() {
  $("cancel-open").addEventListener("click", () => {
    $("cancel-form").hidden = false;
    $("cancel-reason").focus();
  });
  $("cancel-keep").addEventListener("click", () => {
    $("cancel-form").hidden = true;
  });
  $("cancel-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const reason = $("cancel-reason").value.trim();
    if (!reason) return;
    send($("cancel-send"), $("cancel-result"),
      () => api("POST", orderPath("/cancel"), { reason }),
      ({ status, data }) => {
        $("cancel-form").hidden = true;
        // 202: the cancel is recorded and carried out when the order runs again.
        if (status === 202) return data.detail;
        return t("cancelled", { amount: money(data.refunded, state.order && state.order.currency) });
      });
  });

  $("feedback-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const message = $("feedback-message").value.trim();
    if (!message) return;
    const category = $("feedback-category").value;
    send($("feedback-send"), $("feedback-result"),
      // The same key on a retry of this message: one ticket, however often it is sent.
      () => api("POST", orderPath("/feedback"), { category, message, request_key: feedbackKey }),
      ({ data }) => {
        $("feedback-message").value = "";
        feedbackKey = newRequestKey();
        showTicket({ ticket_id: data.ticket_id, category: data.category, status: "open" });
        return t("ticket", { ticket: data.ticket_id });
      });
  });

  $("confirm-receipt").addEventListener("click", () => {
    send($("confirm-receipt"), $("confirm-result"),
      () => api("POST", orderPath("/confirm-receipt")),
      () => t("confirmed"));
  });

  $("return-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const lines = [...document.querySelectorAll("#return-lines tbody tr")]
      .map((row) => ({
        sku: row.querySelector("input").dataset.sku,
        quantity: Number(row.querySelector("input").value),
        resolution: row.querySelector("select").value,
      }))
      .filter((line) => line.quantity > 0);
    const reason = $("return-reason").value.trim();
    if (!lines.length) {
      $("return-result").className = "result error";
      $("return-result").textContent = t("return_none");
      return;
    }
    if (!reason) return;
    send($("return-send"), $("return-result"),
      () => api("POST", orderPath("/returns"), { lines, reason }),
      ({ data }) => {
        $("return-reason").value = "";
        for (const input of document.querySelectorAll("#return-lines input")) input.value = "0";
        for (const select of document.querySelectorAll("#return-lines select")) select.value = "refund";
        loadReturns();
        const waits = data.status === "REQUESTED";
        const said = t(waits ? "return_waits" : "return_asked", { id: data.return_id });
        if (!data.replacement_order_id) return said;
        // Placed only once the return is approved: customer service may still refuse it.
        const exchange = t(waits ? "return_exchange_waits" : "return_exchange_asked", {
          order: data.replacement_order_id,
        });
        return `${said} ${exchange}`;
      });
  });

  $("review-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = document.querySelector('input[name="rating"]:checked');
    const rating = Number(chosen ? chosen.value : 5);
    const comment = $("review-comment").value.trim();
    send($("review-send"), $("review-result"),
      () => api("POST", orderPath("/review"), { rating, comment }),
      () => {
        $("review-form").hidden = true;
        return t("reviewed");
      });
  });
}

// ------------------------------------------------------------------ start
// Another link opened in this tab changes only the fragment, which reloads nothing.
window.addEventListener("hashchange", () => {
  if (new URLSearchParams(location.hash.slice(1)).get("token")) location.reload();
});

async function start() {
  state.orderId = orderIdFromPath();
  const wanted = (navigator.language || "en").toLowerCase().startsWith("de") ? "de"
    : (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
  state.locale = wanted;
  translatePage();
  wireActions();
  if (!state.orderId) {
    say(t("not_found"), true);
    return;
  }
  state.token = takeToken();
  if (!state.token) {
    say(t("no_token"), true);
    return;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const { data } = await api("GET", orderPath());
      say("");
      render(data);
      break;
    } catch (error) {
      if (isDenial(error)) {
        denied(error);
        return;
      }
      say(t("load_failed", { detail: error.detail || error.message }), true);
      await sleep(Math.min(1000 * 2 ** attempt, 15000));
    }
  }
  loadTickets();
  loadReturns();
  const controller = new AbortController();
  state.stream = controller;
  follow(controller);
}

start();
