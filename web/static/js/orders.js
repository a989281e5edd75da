// The buyer's own orders, from GET /api/orders with this browser's guest session: each with where
// its request stands (cancellation, refund, return: docs/money.md) and what the buyer can do
// next, from asking to shipping goods back.

import { api, config, el, guestToken, money, t } from "./common.js";

const list = document.getElementById("orders");
const PLACEHOLDER_IMAGE = "/static/img/placeholder.svg";
const REASONS = ["damaged", "not_as_described", "wrong_item", "changed_mind", "other"];
const OPEN = ["requested", "offered", "approved", "shipped_back", "received"];
const CANCEL_BEFORE = ["paid", "awaiting_shipment"];
const RETURN_AFTER = ["delivered", "completed"];
// A refusal the buyer can act on, in their language; any other shows the generic line.
const REFUSALS = {
  return_window_closed: "request_window_closed",
  return_open: "request_already_open",
  invalid_photos: "request_bad_photos",
};

let token = null;

function statusText(status) {
  return t(`status_${status}`);
}

// Where a request stands, in a sentence.
function requestText(request) {
  const amount = money(request.amount, request.currency);
  switch (request.status) {
    case "requested":
      return t(`request_requested_${request.kind}`);
    case "offered":
      return t("request_offered", { amount: money(request.offer_amount, request.currency) });
    case "approved":
      return t(request.kind === "return" ? "request_approved_return" : "request_approved");
    case "refunded":
      return t("request_refunded", { amount });
    case "rejected":
      return t("request_rejected", { reason: request.answer });
    default:
      return t(`request_${request.status}`);
  }
}

function call(path, body) {
  return api("POST", path, { body, headers: { Authorization: `Bearer ${token}` } });
}

// A form or button's action: run it, then draw the list again; a refusal is shown beside it.
function acting(place, run) {
  return async (event) => {
    event.preventDefault();
    const buttons = place.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    place.querySelector(".form-error")?.remove();
    try {
      await run();
      await load();
    } catch (error) {
      const key = REFUSALS[error.code] || "request_failed";
      place.append(el("p", { class: "form-error", role: "alert" }, t(key)));
      buttons.forEach((b) => (b.disabled = false));
    }
  };
}

// A button making one of the buyer's moves; a refusal is shown in ``place``.
function moveButton(request, move, label, place, kind = "") {
  const button = el("button", { type: "button", class: kind, dataset: { move } }, t(label));
  button.addEventListener("click", acting(place, () => call(`/api/requests/${request.id}/${move}`)));
  return button;
}

function shipBackForm(request) {
  const form = el(
    "form",
    { class: "ship-back-form" },
    el("input", { name: "carrier", required: true, maxlength: 60, placeholder: t("carrier"), "aria-label": t("carrier") }),
    el("input", { name: "tracking_number", required: true, maxlength: 100, placeholder: t("tracking_number"), "aria-label": t("tracking_number") }),
    el("button", { type: "submit", class: "primary" }, t("ship_back")),
  );
  form.addEventListener(
    "submit",
    acting(form, () =>
      call(`/api/requests/${request.id}/ship_back`, {
        carrier: form.elements.carrier.value.trim(),
        tracking_number: form.elements.tracking_number.value.trim(),
      }),
    ),
  );
  return form;
}

function requestPanel(request) {
  const panel = el(
    "div",
    { class: "request", dataset: { requestId: request.id, status: request.status } },
    el("p", { class: "request-status" }, requestText(request)),
  );
  const actions = el("div", { class: "request-actions" });
  panel.append(actions);
  if (request.status === "offered") {
    actions.append(moveButton(request, "accept", "accept_offer", actions, "primary"));
    actions.append(moveButton(request, "decline", "decline_offer", actions));
  } else if (request.status === "requested") {
    actions.append(moveButton(request, "withdraw", "withdraw_request", actions));
  } else if (request.status === "approved" && request.kind === "return") {
    panel.append(shipBackForm(request));
  }
  return panel;
}

// What the buyer may ask for now: a cancellation before shipping, a refund or a return once
// delivered and within the return window.
function kindsOpen(order) {
  if (order.refunded >= order.total) return [];
  if (CANCEL_BEFORE.includes(order.status)) return ["cancel"];
  const window = config.return_window_ms;
  if (RETURN_AFTER.includes(order.status) && order.delivered_ms && Date.now() <= order.delivered_ms + window) {
    return ["return", "refund_only"];
  }
  return [];
}

function askForm(order, kinds) {
  const cancel = kinds[0] === "cancel";
  const field = (label, control) => el("label", { class: "field" }, el("span", {}, t(label)), control);
  const form = el("form", { class: "request-form" });
  if (!cancel) {
    form.append(
      field(
        "request_kind",
        el("select", { name: "kind" }, ...kinds.map((k) => el("option", { value: k }, t(`request_kind_${k}`)))),
      ),
    );
  }
  form.append(
    field("request_reason", el("select", { name: "reason" }, ...REASONS.map((r) => el("option", { value: r }, t(`reason_${r}`))))),
    field("request_note", el("textarea", { name: "note", maxlength: 1000, rows: 2 })),
  );
  if (!cancel) {
    form.append(field("request_photos", el("textarea", { name: "photos", rows: 2, placeholder: "https://…" })));
  }
  form.append(el("button", { type: "submit", class: "primary" }, t("request_send")));
  form.addEventListener(
    "submit",
    acting(form, () => {
      const photos = cancel
        ? []
        : form.elements.photos.value.split(/\s+/).filter(Boolean);
      return call(`/api/orders/by-hold/${order.hold_id}/requests`, {
        kind: cancel ? "cancel" : form.elements.kind.value,
        reason: form.elements.reason.value,
        note: form.elements.note.value.trim(),
        photos,
      });
    }),
  );
  return el(
    "details",
    { class: "ask" },
    el("summary", {}, t(cancel ? "request_cancel" : "request_return")),
    form,
  );
}

// One SKU of a cart's order (decision 0028).
function orderLine(line, currency) {
  const name = line.variant ? `${line.title} · ${line.variant}` : line.title || `#${line.sku_id}`;
  return el(
    "li",
    { class: "order-line", dataset: { skuId: line.sku_id } },
    el("bdi", {}, name),
    " · ",
    t("order_qty", { qty: line.qty }),
    " · ",
    money(line.qty * line.unit_price, currency),
  );
}

// What a cart's order saved and paid for shipping (docs/protocol.md, Cart): promotions, the
// voucher (on the goods and on shipping), and the shipping fee.
function orderAmounts(order) {
  const off = (amount) => `−${money(amount, order.currency)}`;
  const rows = [];
  const promoted = order.discount - order.voucher_discount;
  if (promoted > 0) rows.push(el("p", { class: "order-promotions" }, t("promotions_line"), " ", off(promoted)));
  if (order.voucher) {
    const saved = order.voucher_discount + order.shipping_discount;
    rows.push(el("p", { class: "order-discount" }, t("voucher_line", { code: order.voucher }), " ", off(saved)));
  }
  const fee = order.shipping_fee;
  rows.push(el("p", { class: "order-shipping" }, t("shipping_fee"), " ", fee > 0 ? money(fee, order.currency) : t("free_shipping")));
  return el("div", { class: "order-amounts" }, ...rows);
}

function orderItem(order) {
  const item = order.item || {};
  const title = item.variant ? `${item.title} · ${item.variant}` : item.title || `#${order.sku_id}`;
  const request = order.request || null;
  const open = request && OPEN.includes(request.status);
  const kinds = open ? [] : kindsOpen(order);
  return el(
    "li",
    { class: "order", id: `order-${order.id}`, dataset: { status: order.status } },
    el("img", { class: "thumb", src: item.image || PLACEHOLDER_IMAGE, alt: "" }),
    el(
      "div",
      { class: "order-body" },
      el("h2", {}, t("order_number", { id: order.id })),
      order.lines
        ? el("ul", { class: "order-lines" }, ...order.lines.map((line) => orderLine(line, order.currency)))
        : null,
      order.lines ? orderAmounts(order) : null,
      order.lines
        ? el("p", { class: "order-total" }, t("total"), " ", money(order.total, order.currency))
        : el("p", {}, title, " · ", t("order_qty", { qty: order.quantity }), " · ", money(order.total, order.currency)),
      el("p", {}, el("span", { class: `status status-${order.status}` }, statusText(order.status))),
      order.tracking_number
        ? el("p", { class: "tracking" }, t("order_tracking", { carrier: order.carrier, number: order.tracking_number }))
        : null,
      request ? requestPanel(request) : null,
      kinds.length ? askForm(order, kinds) : null,
    ),
  );
}

async function load() {
  if (!localStorage.getItem("livecart.guest")) {
    document.getElementById("orders-empty").hidden = false;
    return;
  }
  token = await guestToken();
  const { orders } = await api("GET", "/api/orders", { headers: { Authorization: `Bearer ${token}` } });
  list.replaceChildren(...orders.map(orderItem));
  document.getElementById("orders-empty").hidden = orders.length > 0;
}

load().catch(() => {
  document.getElementById("orders-empty").hidden = false;
  document.getElementById("orders-empty").textContent = t("error_network");
});
