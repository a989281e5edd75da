// The buyer's own orders, from GET /api/orders with this browser's guest session.

import { api, el, guestToken, money, t } from "./common.js";

const list = document.getElementById("orders");
const PLACEHOLDER_IMAGE = "/static/img/placeholder.svg";

function statusText(status) {
  return t(`status_${status}`);
}

function orderItem(order) {
  const item = order.item || {};
  const title = item.variant ? `${item.title} · ${item.variant}` : item.title || `#${order.sku_id}`;
  return el(
    "li",
    { class: "order", id: `order-${order.id}`, dataset: { status: order.status } },
    el("img", { class: "thumb", src: item.image || PLACEHOLDER_IMAGE, alt: "" }),
    el(
      "div",
      { class: "order-body" },
      el("h2", {}, t("order_number", { id: order.id })),
      el("p", {}, title, " · ", t("order_qty", { qty: order.quantity }), " · ", money(order.total, order.currency)),
      el("p", {}, el("span", { class: `status status-${order.status}` }, statusText(order.status))),
      order.tracking_number
        ? el("p", { class: "tracking" }, t("order_tracking", { carrier: order.carrier, number: order.tracking_number }))
        : null,
    ),
  );
}

async function load() {
  if (!localStorage.getItem("livecart.guest")) {
    document.getElementById("orders-empty").hidden = false;
    return;
  }
  const token = await guestToken();
  const { orders } = await api("GET", "/api/orders", { headers: { Authorization: `Bearer ${token}` } });
  list.replaceChildren(...orders.map(orderItem));
  document.getElementById("orders-empty").hidden = orders.length > 0;
}

load().catch(() => {
  document.getElementById("orders-empty").hidden = false;
  document.getElementById("orders-empty").textContent = t("error_network");
});
