// The viewer's room: video over WHEP, the pinned product and the flash deal (countdown on the
// server's clock, stock bar), Buy -> a hold with its own countdown -> checkout -> the order
// number, chat and the viewer count. Everything shown comes from the room's websocket.

import { api, clockText, config, el, guestToken, money, randomId, t } from "./common.js";
import { fillAddress, keepAddress, payHold, readForm, waitForOrder } from "./pay.js";
import { Shop, offerOf, priceTag, promotionsOf } from "./shop.js";
import { RoomSocket } from "./room-socket.js";
import { ViewerFormats } from "./viewer-formats.js";
import { watch } from "./webrtc.js";

const $ = (id) => document.getElementById(id);
const roomId = config.room_id;
const PLACEHOLDER = "/static/img/placeholder.svg"; // a product without a picture
// taken: per deal, the units this viewer holds or bought (what its per-buyer limit counts).
const state = { room: null, stock: {}, viewers: 0, holds: {}, taken: {}, activeHold: null };
const socket = new RoomSocket(roomId, {
  token: () => guestToken(),
  onMessage: receive,
  onState: showConnection,
});

// --- connection ---------------------------------------------------------------------------

function showConnection(status, code) {
  const banner = $("connection");
  banner.dataset.state = status;
  if (status === "live") {
    banner.hidden = true;
    return;
  }
  buyDone(); // an unanswered tap is answered by the "holds" message after the reconnect
  banner.hidden = false;
  if (status === "closed") banner.textContent = code === 4004 ? "404" : code === 4003 ? t("error_banned") : t("error_generic");
  else banner.textContent = status === "connecting" ? t("connecting") : t("reconnecting");
}

// --- the room's messages ------------------------------------------------------------------

const handlers = {
  snapshot(m) {
    state.room = m.room;
    state.stock = Object.fromEntries(Object.entries(m.stock).map(([id, left]) => [Number(id), left]));
    state.viewers = m.viewers;
    $("chat-lines").replaceChildren(...m.chat.map(chatLine));
    scrollChat();
    renderAll();
    formats.snapshot(m);
  },
  holds(m) {
    state.taken = Object.fromEntries(Object.entries(m.taken || {}).map(([id, n]) => [Number(id), n]));
    for (const hold of m.holds) rememberHold(hold);
    const open = m.holds.find((h) => h.state === "held" || h.state === "paying");
    if (open && !state.activeHold) openCheckout(open);
  },
  "room.live"() {
    state.room.status = "live";
    renderAll();
  },
  "room.ended"() {
    state.room.status = "ended";
    renderAll();
  },
  "stream.started"(m) {
    state.room.stream = { started_ms: m.ms };
    renderStage();
  },
  "stream.ended"() {
    state.room.stream = null;
    renderStage();
  },
  pin(m) {
    // The room state names the pinned product by id; its card is in the bag.
    state.room.pinned = m.product.product_id;
    if (!pinnedProduct()) state.room.bag.push(m.product);
    renderCard();
    renderBag();
  },
  unpin() {
    state.room.pinned = null;
    renderCard();
    renderBag();
  },
  "bag.added"(m) {
    state.room.bag.push(m.product);
    renderBag();
  },
  "bag.removed"(m) {
    state.room.bag = state.room.bag.filter((p) => p.product_id !== m.product_id);
    renderBag();
  },
  "deal.scheduled"(m) {
    state.room.deals.push(m.deal);
    state.stock[m.deal.deal_id] = m.deal.quantity;
    renderCard();
  },
  "deal.live"(m) {
    updateDeal(m.deal_id, { status: "live", ends_ms: m.ends_ms });
  },
  "deal.stock"(m) {
    state.stock[m.deal_id] = m.left;
    renderCard();
  },
  "deal.sold_out"(m) {
    state.stock[m.deal_id] = m.left;
    updateDeal(m.deal_id, { sold_out: true });
  },
  "deal.restocked"(m) {
    state.stock[m.deal_id] = m.left;
    updateDeal(m.deal_id, { sold_out: false });
  },
  "deal.ended"(m) {
    updateDeal(m.deal_id, { status: "ended" });
  },
  chat(m) {
    $("chat-lines").append(chatLine(m));
    const lines = $("chat-lines");
    while (lines.children.length > 100) lines.firstElementChild.remove();
    scrollChat();
  },
  "voucher.dropped"(m) {
    state.room.voucher = m.voucher;
    renderVoucher();
  },
  "chat.deleted"(m) {
    document.querySelector(`[data-seq="${m.chat_seq}"]`)?.remove();
  },
  viewers(m) {
    state.viewers = m.count;
    renderViewers();
  },
  "hold.granted"(m) {
    buyDone();
    // A retried tap is answered with the same hold: count each hold once.
    if (!state.holds[m.hold.id]) state.taken[m.deal_id] = (state.taken[m.deal_id] || 0) + m.hold.qty;
    rememberHold(m.hold);
    openCheckout({ ...m.hold, deal_id: m.deal_id });
  },
  "hold.expired"(m) {
    holdClosed(m.hold_id, t("hold_expired"));
  },
  "hold.released"(m) {
    holdClosed(m.hold_id, "");
  },
  "hold.sold"(m) {
    if (state.holds[m.hold_id]) state.holds[m.hold_id].state = "sold";
  },
  error(m) {
    if (formats.refused(m)) return;
    if (m.ref === "chat") {
      showChatError(m.code);
    } else if (m.ref && m.ref.startsWith("tap-")) {
      // The tapped deal, from the tap's ref ("tap-<deal>-<random>"): the card may show another.
      const deal = state.room.deals.find((d) => d.deal_id === Number(m.ref.split("-")[1]));
      if (m.code === "limit_exceeded" && deal) state.taken[deal.deal_id] = deal.per_buyer_limit;
      buyDone();
      // At the limit the button itself says why; other refusals are told below it.
      $("buy-error").textContent = m.code === "limit_exceeded" ? "" : errorText(m.code);
    } else if (m.code === "invalid_token" || m.code === "session_expired") {
      guestToken({ renew: true }).then(() => socket.ws.close(), () => {});
    }
  },
};

function receive(message) {
  if (!state.room && message.type !== "snapshot" && message.type !== "welcome" && message.type !== "holds") return;
  (handlers[message.type] || formatHandlers[message.type])?.(message);
}

function updateDeal(dealId, changes) {
  const deal = state.room.deals.find((d) => d.deal_id === dealId);
  if (deal) Object.assign(deal, changes);
  renderCard();
}

// --- rendering ----------------------------------------------------------------------------

function renderAll() {
  $("live-badge").hidden = state.room.status !== "live";
  renderViewers();
  renderStage();
  renderCard();
  renderChatForm();
  renderBag();
  renderVoucher();
}

// Nobody is watching an ended live: the count goes with it.
function renderViewers() {
  $("viewers").hidden = state.room?.status === "ended";
  $("viewers").textContent = t("viewers", { count: state.viewers });
}

function renderChatForm() {
  const ended = state.room.status === "ended";
  $("chat-input").disabled = ended;
  $("chat-form").querySelector("button").disabled = ended;
  $("chat-input").placeholder = ended ? t("chat_closed") : t("chat_placeholder");
  if (ended) $("chat-error").textContent = "";
}

function pinnedProduct() {
  return state.room.bag.find((p) => p.product_id === state.room.pinned) || null;
}

// The deal shown on the card: the pinned product's open deal, else the newest open one.
function currentDeal() {
  const open = state.room.deals.filter((d) => d.status !== "ended" && socket.now() < d.ends_ms);
  const pinned = state.room.pinned;
  return open.filter((d) => d.product_id === pinned).at(-1) || open.at(-1) || null;
}

function renderCard() {
  const deal = currentDeal();
  const pinned = pinnedProduct();
  const card = $("product-card");
  card.hidden = !deal && !pinned;
  if (card.hidden) return;
  const image = (deal ? deal.image : pinned.image) || PLACEHOLDER;
  if ($("card-image").getAttribute("src") !== image) $("card-image").src = image;
  $("card-image").hidden = false;
  $("deal-badge").hidden = !deal;
  $("deal-box").hidden = !deal;
  $("buy").hidden = !deal;
  $("deal-to-cart").hidden = !deal;
  card.dataset.dealId = deal ? deal.deal_id : "";
  if (deal) {
    $("card-title").textContent = deal.variant ? `${deal.title} · ${deal.variant}` : deal.title;
    $("card-price").textContent = money(deal.deal_price, deal.currency);
    $("card-list-price").textContent = money(deal.list_price, deal.currency);
    const left = state.stock[deal.deal_id] ?? deal.quantity;
    $("stock-fill").style.width = `${Math.round((100 * left) / deal.quantity)}%`;
    $("stock-text").textContent = left > 0 ? t("stock_left", { left, quantity: deal.quantity }) : t("sold_out");
    $("limit-text").textContent = t("per_buyer_limit", { limit: deal.per_buyer_limit });
  } else {
    const sku = pinned.skus[0];
    $("card-title").textContent = pinned.title;
    $("card-price").textContent = sku ? money(sku.list_price, sku.currency) : "";
    $("card-list-price").textContent = "";
  }
  tick();
}

// Every quarter second: the countdown and the Buy button, on the server's clock.
function tick() {
  if (!state.room) return;
  const deal = currentDeal();
  const box = $("deal-countdown");
  if (!deal) {
    if ($("card-title").textContent && $("deal-box").hidden === false) renderCard();
    formats.showWaitlist(null, false);
    return;
  }
  const now = socket.now();
  const left = state.stock[deal.deal_id] ?? deal.quantity;
  let phase;
  if (now < deal.starts_ms) {
    phase = "upcoming";
    box.textContent = t("deal_starts_in", { time: clockText(deal.starts_ms - now) });
    box.dataset.targetMs = deal.starts_ms;
  } else if (now < deal.ends_ms && deal.status !== "ended") {
    phase = left > 0 ? "open" : "sold_out";
    box.textContent = t("deal_ends_in", { time: clockText(deal.ends_ms - now) });
    box.dataset.targetMs = deal.ends_ms;
  } else {
    phase = "ended";
    box.textContent = t("deal_over");
  }
  box.dataset.phase = phase;
  const buy = $("buy");
  buy.dataset.phase = phase;
  if (buy.dataset.busy) return; // a tap is on its way: the button stays as it is
  if (state.activeHold && !state.activeHold.paid && phase !== "ended") {
    buy.disabled = false; // the sheet was closed with a unit still held: back to paying for it
    buy.textContent = t("checkout_title");
    return;
  }
  const atLimit = phase === "open" && (state.taken[deal.deal_id] || 0) >= deal.per_buyer_limit;
  buy.disabled = phase !== "open" || atLimit;
  buy.dataset.limitReached = atLimit ? "1" : "";
  buy.textContent = atLimit ? t("limit_reached") : phase === "sold_out" ? t("sold_out") : t("buy");
  formats.showWaitlist(deal, phase === "sold_out" && !atLimit);
  $("limit-text").textContent = atLimit
    ? t("limit_reached_reason", { limit: deal.per_buyer_limit })
    : t("per_buyer_limit", { limit: deal.per_buyer_limit });
}
setInterval(tick, 250);

function chatLine(m) {
  return el(
    "li",
    { class: `chat-line role-${m.role}`, dataset: { seq: m.seq } },
    el("span", { class: "chat-name" }, m.name || m.user.slice(0, 6)),
    " ",
    el("span", { class: "chat-text", dir: "auto" }, m.text), // Arabic and English lines mix
  );
}

function scrollChat() {
  const lines = $("chat-lines");
  lines.scrollTop = lines.scrollHeight;
}

// --- video --------------------------------------------------------------------------------

let media = null;
let mediaStarting = false;

// Our WHEP peer outlives a creator's short drop (the server keeps viewers for a grace
// period and the picture comes back on the same peer), so a stream.ended only shows the
// status; the peer goes when its connection does, or when the page does.
async function renderStage() {
  const room = state.room;
  const wanted = room.status !== "ended" && Boolean(room.stream);
  if (room.status === "ended") endVideo();
  const status = $("stage-status");
  if (room.status === "ended") status.textContent = t("room_ended");
  else if (!room.stream) status.textContent = media ? t("stream_ended") : t("waiting_for_video");
  status.hidden = wanted && Boolean(media);
  if (wanted && !media && !mediaStarting) await startVideo();
}

async function startVideo() {
  mediaStarting = true;
  try {
    const token = await guestToken();
    const peer = await watch(`/whep/${roomId}`, $("video"), { Authorization: `Bearer ${token}` });
    media = peer;
    peer.pc.addEventListener("connectionstatechange", () => {
      if (["failed", "closed"].includes(peer.pc.connectionState) && media === peer) videoGone();
    });
    $("unmute").hidden = !$("video").muted || state.room?.status === "ended";
  } catch {
    setTimeout(() => state.room?.stream && renderStage(), 3000);
  } finally {
    mediaStarting = false;
  }
  renderStage();
}

// The live is over: drop the last frame rather than freeze on it. The server ends every
// viewer's peer with the room, so there is nothing to DELETE.
function endVideo() {
  if (media) {
    media.pc.close();
    media = null;
  }
  $("video").srcObject = null;
  $("video").hidden = true;
  $("unmute").hidden = true;
}

function videoGone() {
  // The server hung up (the grace ran out, or the room ended): nothing left to DELETE.
  media.pc.close();
  media = null;
  $("video").srcObject = null;
  renderStage();
}

$("unmute").addEventListener("click", () => {
  $("video").muted = false;
  $("unmute").hidden = true;
});
addEventListener("pagehide", () => media?.close());

// --- buying -------------------------------------------------------------------------------

$("buy").addEventListener("click", () => {
  const deal = currentDeal();
  if (!deal || $("buy").dataset.busy) return;
  if (state.activeHold && !state.activeHold.paid) {
    openCheckout(state.activeHold);
    return;
  }
  $("buy-error").textContent = "";
  const sent = socket.send({
    type: "buy",
    deal_id: deal.deal_id,
    qty: 1,
    request_id: `tap-${deal.deal_id}-${randomId()}`,
  });
  if (!sent) {
    $("buy-error").textContent = t("error_network");
    return;
  }
  // One tap, one hold: the button waits for the answer (hold.granted or an error).
  $("buy").dataset.busy = "1";
  $("buy").disabled = true;
  $("buy").textContent = t("reserving");
});

// The deal's item into the cart at the deal's price, paid later with the rest of the cart.
$("deal-to-cart").addEventListener("click", async () => {
  const deal = currentDeal();
  if (!deal) return;
  $("buy-error").textContent = "";
  $("deal-to-cart").disabled = true;
  try {
    await shop.addDeal(deal);
  } catch (error) {
    $("buy-error").textContent = errorText(error.code);
  } finally {
    $("deal-to-cart").disabled = false;
  }
});

function buyDone() {
  delete $("buy").dataset.busy;
  tick();
}

function rememberHold(hold) {
  state.holds[hold.id] = { ...state.holds[hold.id], ...hold };
}

let holdTimer = null;

// ``priced``: an auction's, a giveaway's or a claim's hold brings its own title and amount.
function openCheckout(hold, priced = null) {
  state.activeHold = { ...state.holds[hold.id], ...hold };
  const dealId = hold.deal_id ?? Number(hold.id.split("-")[0]);
  const deal = priced ? null : state.room?.deals.find((d) => d.deal_id === dealId);
  state.activeHold.amount = deal ? deal.deal_price * hold.qty : priced?.amount ?? null;
  state.activeHold.currency = deal?.currency ?? priced?.currency;
  const title = deal?.title ?? priced?.title;
  const amount = state.activeHold.amount;
  $("hold-item").textContent = title ? `${title} × ${hold.qty}` : `× ${hold.qty}`;
  $("pay").textContent = t("pay", { amount: amount != null && state.activeHold.currency ? money(amount, state.activeHold.currency) : "" });
  $("pay-error").textContent = "";
  $("checkout-form-view").hidden = false;
  $("checkout-done").hidden = true;
  fillAddress($("pay-form"));
  const dialog = $("checkout");
  if (!dialog.open) dialog.showModal();
  clearInterval(holdTimer);
  holdTimer = setInterval(holdTick, 250);
  holdTick();
}

function holdTick() {
  const hold = state.activeHold;
  if (!hold) return;
  const left = hold.expires_ms - socket.now();
  $("hold-timer").textContent = t("hold_pay_within", { time: clockText(left) });
  $("hold-timer").dataset.expiresMs = hold.expires_ms;
  // While a payment is under way the server keeps the hold; it will say how it ended.
  if (left <= 0 && hold.state === "held" && !hold.payKey) holdClosed(hold.id, t("hold_expired"));
}

function holdClosed(holdId, message) {
  const hold = state.holds[holdId];
  if (hold && hold.state !== "closed" && hold.state !== "sold") {
    const dealId = Number(holdId.split("-")[0]);
    state.taken[dealId] = Math.max(0, (state.taken[dealId] || 0) - hold.qty);
  }
  if (hold) hold.state = "closed";
  if (state.activeHold?.id !== holdId || state.activeHold.paid) return;
  clearInterval(holdTimer);
  state.activeHold = null;
  $("checkout").close();
  $("buy-error").textContent = message;
}

$("pay-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const hold = state.activeHold;
  const body = readForm($("pay-form"));
  if (!hold || !body) {
    $("pay-error").textContent = t("error_required");
    return;
  }
  $("pay").disabled = true;
  $("pay").textContent = t("paying");
  $("pay-error").textContent = "";
  try {
    const order = await payHold(hold, body);
    hold.paid = true;
    keepAddress($("pay-form"), body.shipping);
    clearInterval(holdTimer);
    showPaid(order);
  } catch (error) {
    $("pay-error").textContent = errorText(error.code);
    if (["hold_expired", "hold_released", "deal_ended"].includes(error.code)) setTimeout(() => holdClosed(hold.id, errorText(error.code)), 1500);
  } finally {
    $("pay").disabled = false;
    if (state.activeHold) $("pay").textContent = t("pay", { amount: hold.amount != null ? money(hold.amount, hold.currency) : "" });
  }
});

$("release").addEventListener("click", async () => {
  const hold = state.activeHold;
  if (!hold) return;
  const token = await guestToken();
  try {
    await api("DELETE", `/api/holds/${hold.id}`, { headers: { Authorization: `Bearer ${token}` } });
    holdClosed(hold.id, "");
  } catch (error) {
    $("pay-error").textContent = errorText(error.code);
  }
});

$("checkout").addEventListener("close", () => {
  if (state.activeHold?.paid) state.activeHold = null;
});

function showPaid(receipt) {
  $("checkout-form-view").hidden = true;
  $("checkout-done").hidden = false;
  $("order-number").textContent = t("order_confirming");
  delete $("order-number").dataset.orderId; // the last order's, on a second purchase
  $("checkout").dataset.paidHold = receipt.hold_id;
  // Unless a later purchase took the sheet meanwhile.
  waitForOrder(receipt.hold_id, orderFound, () => $("checkout").dataset.paidHold === receipt.hold_id);
}

// The order number is the SQL record's, written by the order pipeline moments after payment.
function orderFound(order) {
  $("order-number").textContent = t("order_number", { id: order.id });
  $("order-number").dataset.orderId = order.id;
}

function errorText(code) {
  const known = `error_${code}`;
  return (config.strings || {})[known] ? t(known) : t("error_generic");
}

// --- the bag and the cart -----------------------------------------------------------------

const shop = new Shop({
  now: () => socket.now(),
  roomId: () => state.room?.id ?? null,
  onChange: () => ($("cart-count").textContent = shop.units() ? String(shop.units()) : ""),
});
let bagStock = {}; // SKU id -> units buyable at list price, read when the bag opens
let bagPromotions = {}; // shop id -> its promotions, read when the bag opens
let bagRead = new Set(); // product ids whose promotions and stock this opening has asked for

function renderBag() {
  const bag = state.room?.bag || [];
  $("bag-count").textContent = bag.length ? String(bag.length) : "";
  if (!$("bag-sheet").open) return;
  $("bag-empty").hidden = bag.length > 0;
  // The pinned product first, then the bag's own order.
  const ordered = [...bag].sort((a, b) => (b.product_id === state.room.pinned) - (a.product_id === state.room.pinned));
  $("bag-items").replaceChildren(...ordered.map(bagItem));
  readBagExtras(bag);
}

function bagItem(card) {
  const cheapest = card.skus.reduce((low, sku) => (!low || sku.list_price < low.list_price ? sku : low), null);
  const counts = card.skus.map((sku) => bagStock[sku.sku_id]).filter((n) => n !== undefined);
  const left = counts.length ? counts.reduce((a, b) => a + b, 0) : undefined;
  const note = left === 0 ? t("sold_out") : left !== undefined && left < 5 ? t("only_left", { left }) : "";
  const open = () => {
    $("bag-sheet").close();
    socket.send({ type: "product.clicked", product_id: card.product_id }); // the room's analytics
    shop.openProduct(card);
  };
  return el(
    "li",
    { class: "bag-item", dataset: { productId: card.product_id, soldOut: left === 0 ? "1" : "0" } },
    el("button", { type: "button", onclick: open },
      el("img", { src: card.image || PLACEHOLDER, alt: "", width: 56, height: 56 }),
      el("span", { class: "bag-text" },
        card.product_id === state.room.pinned ? el("span", { class: "badge pinned" }, t("pinned")) : null,
        el("bdi", { class: "bag-title" }, card.title),
        cheapest ? el("span", { class: "price" }, ...priceTag(cheapest.list_price, cheapest.currency, offerOf(bagPromotions[card.shop_id], card.product_id, cheapest.currency, socket.now()))) : null,
        note ? el("span", { class: "stock-note" }, note) : null,
      ),
    ),
  );
}

$("bag-button").addEventListener("click", () => {
  $("bag-sheet").showModal();
  socket.send({ type: "bag.opened" }); // each product it lists is an impression (analytics)
  bagRead = new Set();
  renderBag();
});

// Prices under promotion and live stock for what the open bag lists. The bag can fill after it
// opened (a tap before the room's snapshot arrived, a product added live), so each render asks
// for the products not read since the sheet opened.
function readBagExtras(bag) {
  const fresh = bag.filter((card) => !bagRead.has(card.product_id));
  if (!fresh.length) return;
  fresh.forEach((card) => bagRead.add(card.product_id));
  const shops = [...new Set(fresh.map((card) => card.shop_id))];
  Promise.all(shops.map(async (id) => [id, await promotionsOf(id)])).then((found) => {
    bagPromotions = { ...bagPromotions, ...Object.fromEntries(found) };
    renderBag();
  });
  const ids = fresh.map((card) => `product_id=${card.product_id}`);
  api("GET", `/api/stock?${ids.join("&")}`).then(
    ({ stock }) => {
      for (const [id, n] of Object.entries(stock)) bagStock[Number(id)] = n;
      renderBag();
    },
    () => {}, // the bag shows without stock notes
  );
}

$("cart-button").addEventListener("click", () => shop.openCart());

// --- a voucher the creator dropped --------------------------------------------------------

const claimedVouchers = new Set(); // codes this page claimed (or the server says were claimed)

function voucherOffer(v) {
  let offer;
  if (v.kind === "percent") offer = t("voucher_percent", { percent: v.value / 100 });
  else if (v.kind === "shipping") offer = t("voucher_shipping", { amount: money(v.value, v.currency) });
  else offer = t("voucher_amount", { amount: money(v.value, v.currency) });
  return v.min_spend > 0 ? `${offer} ${t("voucher_min_spend", { amount: money(v.min_spend, v.currency) })}` : offer;
}

function renderVoucher() {
  const v = state.room?.voucher;
  const box = $("voucher-drop");
  box.hidden = !v || state.room.status !== "live" || socket.now() >= v.ends_ms;
  if (box.hidden) return;
  box.dataset.code = v.code;
  $("voucher-code").textContent = v.code;
  $("voucher-offer").textContent = voucherOffer(v);
  const claimed = claimedVouchers.has(v.code);
  $("voucher-claim").disabled = claimed;
  $("voucher-claim").textContent = claimed ? "✓" : t("claim");
  $("voucher-note").textContent = claimed ? t("voucher_claimed_note") : $("voucher-note").textContent;
}

$("voucher-claim").addEventListener("click", async () => {
  const v = state.room?.voucher;
  if (!v) return;
  $("voucher-claim").disabled = true;
  $("voucher-note").textContent = "";
  try {
    const token = await guestToken();
    await api("POST", `/api/shops/${v.shop_id}/vouchers/${encodeURIComponent(v.code)}/claim`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    claimedVouchers.add(v.code);
  } catch (error) {
    if (error.code === "voucher_claimed") claimedVouchers.add(v.code);
    else $("voucher-note").textContent = errorText(error.code);
  }
  renderVoucher();
  if (!claimedVouchers.has(v.code)) $("voucher-claim").disabled = false;
  shop.refresh(); // the cart now shows the voucher's saving
});

// --- chat ---------------------------------------------------------------------------------

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  $("chat-error").textContent = "";
  if (socket.send({ type: "chat", text })) input.value = "";
  else $("chat-error").textContent = t("error_network");
});

let chatErrorTimer = null;
function showChatError(code) {
  $("chat-error").textContent = errorText(code);
  clearTimeout(chatErrorTimer);
  chatErrorTimer = setTimeout(() => ($("chat-error").textContent = ""), 4000);
}

const formats = new ViewerFormats({
  socket,
  state,
  pay(hold, priced) {
    rememberHold(hold);
    openCheckout(hold, priced.title !== undefined || priced.amount !== undefined ? priced : null);
  },
  errorText: (code) => errorText(code),
  takeKept: (m) => shop.takeKept(m.sku_id, m.shop_id, m.hold.id),
});
const formatHandlers = formats.handlers();
socket.start();
