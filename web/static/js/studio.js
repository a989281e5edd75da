// The creator studio: camera preview and WHIP publishing, the bag with Pin buttons, the
// flash-deal form (checked as the API checks it; the API's refusals shown by the field),
// live figures, and chat moderation. Calls the JSON API with the sign-in cookie and the
// page's CSRF token.

import { api, clockText, config, el, minorUnits, money, refusal, t } from "./common.js";
import { Sparklines } from "./analytics.js";
import { Formats } from "./studio-formats.js";
import { RoomSocket } from "./room-socket.js";
import { publish } from "./webrtc.js";

const $ = (id) => document.getElementById(id);
const roomId = config.room_id;
const csrf = { "X-CSRF-Token": config.csrf };
const state = { room: null, stock: {} };
const products = new Map(config.products.map((p) => [p.product_id, p]));

const call = (method, path, body) => api(method, path, { body, headers: csrf });
let formats = null; // auctions, giveaways, comment-to-buy: made once the socket exists

const socket = new RoomSocket(roomId, {
  token: async () => config.ticket,
  onMessage: receive,
  onState(status) {
    $("connection").hidden = status === "live";
    $("connection").textContent = status === "reconnecting" ? t("reconnecting") : t("connecting");
  },
});

function receive(m) {
  if (m.type === "error" && m.ref === "hello") {
    // The ticket expired or the seller's token changed: only a reload (a new sign-in) helps.
    socket.stop();
    $("connection").hidden = false;
    $("connection").textContent = t("st_session_ended");
    return;
  }
  if (m.type === "snapshot") {
    state.room = m.room;
    state.stock = Object.fromEntries(Object.entries(m.stock).map(([id, left]) => [Number(id), left]));
    $("chat-lines").replaceChildren(...m.chat.map(chatLine));
    render();
    formats.snapshot(m);
    refreshVouchers();
    return;
  }
  if (m.type === "stream.failed") {
    // An encoder (OBS, GStreamer, this page) reached the server but could not connect.
    $("video-error").textContent = t("st_encoder_failed", { reason: m.reason });
    $("video-error").dataset.code = m.code;
    return;
  }
  if (!state.room) return;
  if (formats.event(m)) return;
  const room = state.room;
  switch (m.type) {
    case "room.live": room.status = "live"; break;
    case "room.ended": room.status = "ended"; break;
    case "stream.started": room.stream = { started_ms: m.ms }; $("video-error").textContent = ""; break;
    case "stream.ended": room.stream = null; break;
    case "pin": room.pinned = m.product.product_id; break;
    case "unpin": room.pinned = null; break;
    case "bag.added": room.bag.push(m.product); break;
    case "bag.removed": room.bag = room.bag.filter((p) => p.product_id !== m.product_id); break;
    case "deal.scheduled": room.deals.push(m.deal); state.stock[m.deal.deal_id] = m.deal.quantity; break;
    case "deal.live": dealOf(m.deal_id, (d) => (d.status = "live")); break;
    case "deal.ended": dealOf(m.deal_id, (d) => (d.status = "ended")); break;
    case "deal.stock": case "deal.sold_out": case "deal.restocked": state.stock[m.deal_id] = m.left; break;
    case "chat": $("chat-lines").append(chatLine(m)); $("chat-lines").scrollTop = 1e9; return;
    case "chat.deleted": document.querySelector(`[data-seq="${m.chat_seq}"]`)?.remove(); return;
    case "voucher.dropped": room.voucher = m.voucher; renderVouchers(); return;
    case "viewers": $("fig-viewers").textContent = m.count; return;
    default: return;
  }
  render();
}

function dealOf(dealId, change) {
  const deal = state.room.deals.find((d) => d.deal_id === dealId);
  if (deal) change(deal);
}

// --- rendering ----------------------------------------------------------------------------

function render() {
  const room = state.room;
  $("room-status").textContent = t(`sc_state_${room.status}`) + (room.stream ? ` · ${t("st_on_air")}` : "");
  $("room-status").className = `status status-${room.status}`;
  $("end-live").disabled = room.status === "ended";
  $("go-live").disabled = room.status === "ended" || Boolean(peer) || publishing;
  renderBag();
  renderDeals();
  renderVouchers();
}

// --- vouchers: the shop's running ones, dropped into the live for viewers to claim ----------

let vouchers = []; // the shop's vouchers with the uses left, refreshed with the figures

async function refreshVouchers() {
  if (!state.room) return;
  try {
    vouchers = (await api("GET", `/api/shops/${state.room.shop_id}/vouchers`)).vouchers;
  } catch {
    return; // the next refresh will tell
  }
  renderVouchers();
}

function renderVouchers() {
  const room = state.room;
  if (!room) return;
  const now = socket.now();
  const droppable = vouchers.filter((v) => v.starts_ms <= now && now < v.ends_ms && (v.room_id === null || v.room_id === roomId));
  const picked = $("voucher-pick").value;
  $("voucher-pick").replaceChildren(
    ...droppable.map((v) => el("option", { value: v.code }, `${v.code} · ${t("st_left_of", { left: v.left, budget: v.budget })}${v.room_id ? ` · ${t("st_this_live_only")}` : ""}`)),
  );
  if (droppable.some((v) => v.code === picked)) $("voucher-pick").value = picked;
  $("voucher-form").hidden = droppable.length === 0;
  $("voucher-none").hidden = droppable.length > 0;
  $("voucher-drop").disabled = room.status !== "live";
  const dropped = room.voucher;
  const left = vouchers.find((v) => v.code === dropped?.code)?.left;
  $("voucher-now").textContent = dropped
    ? t("st_dropped", { code: dropped.code }) + (left === undefined ? "" : ` · ${t("st_left_of", { left, budget: dropped.budget })}`)
    : t("st_no_voucher_dropped");
}

$("voucher-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("voucher-error").textContent = "";
  const code = $("voucher-pick").value;
  if (code) act(() => call("POST", `/api/rooms/${roomId}/voucher`, { code }), "voucher-error");
});

function renderBag() {
  const room = state.room;
  const pinned = room.pinned;
  $("bag").replaceChildren(
    ...room.bag.map((p) =>
      el(
        "li",
        { class: `bag-item${p.product_id === pinned ? " pinned" : ""}`, dataset: { productId: p.product_id } },
        p.image ? el("img", { class: "thumb", src: p.image, alt: "" }) : null,
        el("span", { class: "bag-title" }, p.title),
        p.product_id === pinned
          ? el("button", { type: "button", class: "secondary", onclick: () => act(() => call("DELETE", `/api/rooms/${roomId}/pin`)) }, t("st_unpin"))
          : el("button", { type: "button", class: "pin", onclick: () => act(() => call("POST", `/api/rooms/${roomId}/pin`, { product_id: p.product_id })) }, t("st_pin")),
      ),
    ),
  );
  const inBag = new Set(room.bag.map((p) => p.product_id));
  const picked = $("bag-add").value;
  $("bag-add").replaceChildren(
    ...config.products.filter((p) => !inBag.has(p.product_id)).map((p) => el("option", { value: p.product_id }, p.title)),
  );
  if ([...$("bag-add").options].some((o) => o.value === picked)) $("bag-add").value = picked;
  $("bag-form").hidden = $("bag-add").options.length === 0;
  const skuSelect = $("deal-sku");
  const chosen = skuSelect.value;
  skuSelect.replaceChildren(
    ...room.bag.flatMap((p) =>
      p.skus.map((s) =>
        el("option", { value: s.sku_id }, `${p.title}${s.variant ? " · " + s.variant : ""} (${money(s.list_price, s.currency)})`),
      ),
    ),
  );
  if (chosen) skuSelect.value = chosen;
}

function renderDeals() {
  const now = socket.now();
  $("deals").replaceChildren(
    ...state.room.deals
      .filter((d) => d.status !== "ended")
      .map((d) => {
        const left = state.stock[d.deal_id] ?? d.quantity;
        const when = now < d.starts_ms ? t("st_starts_in", { time: clockText(d.starts_ms - now) }) : t("st_ends_in", { time: clockText(d.ends_ms - now) });
        return el(
          "li",
          { class: "deal-item", dataset: { dealId: d.deal_id } },
          el("span", {}, `${t("st_deal_line", { title: d.title, price: money(d.deal_price, d.currency), left, quantity: d.quantity })}, ${when}`),
          el("button", { type: "button", class: "secondary", onclick: () => act(() => call("POST", `/api/rooms/${roomId}/deals/${d.deal_id}/stop`)) }, t("sc_stop")),
        );
      }),
  );
}
setInterval(() => state.room && renderDeals(), 1000);

function chatLine(m) {
  return el(
    "li",
    { class: `chat-line role-${m.role}`, dataset: { seq: m.seq, user: m.user } },
    el("span", { class: "chat-name" }, m.name || m.user.slice(0, 6)),
    " ",
    el("span", { class: "chat-text" }, m.text),
    m.role === "viewer"
      ? el(
          "span",
          { class: "moderation" },
          el("button", { type: "button", class: "link", onclick: () => moderate(() => call("DELETE", `/api/rooms/${roomId}/chat/${m.seq}`)) }, t("st_delete")),
          el("button", { type: "button", class: "link", onclick: () => moderate(() => call("PUT", `/api/rooms/${roomId}/mutes/${m.user}`)) }, t("st_mute")),
          el("button", { type: "button", class: "link", onclick: () => moderate(() => call("PUT", `/api/rooms/${roomId}/bans/${m.user}`)) }, t("st_ban")),
        )
      : null,
  );
}

async function act(action, errorBox = "deal-error") {
  try {
    await action();
  } catch (error) {
    $(errorBox).textContent = refusal(error);
  }
}

function moderate(action) {
  $("chat-error").textContent = "";
  return act(action, "chat-error");
}

$("bag-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const productId = Number($("bag-add").value);
  if (productId) act(() => call("POST", `/api/rooms/${roomId}/bag`, { product_id: productId }));
});

// --- the flash-deal form: the API's own rules, checked before sending -----------------------

const FIELD_OF_CODE = {
  invalid_countdown: "countdown_s",
  invalid_duration: "duration_s",
  invalid_price: "deal_price",
  deal_price_not_below_list: "deal_price",
  invalid_quantity: "quantity",
  deal_quantity_above_stock: "quantity",
  invalid_limit: "per_buyer_limit",
  limit_above_quantity: "per_buyer_limit",
  sku_not_in_bag: "sku_id",
  sku_not_found: "sku_id",
};

function skuById(skuId) {
  for (const p of products.values()) for (const s of p.skus) if (s.sku_id === skuId) return s;
  return null;
}

function whole(text) {
  return /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : NaN;
}

function readDeal() {
  const form = $("deal-form");
  const skuId = Number(form.elements.sku_id.value);
  const terms = {
    sku_id: skuId,
    deal_price: minorUnits(form.elements.deal_price.value, skuById(skuId)?.currency || "USD"),
    quantity: whole(form.elements.quantity.value),
    per_buyer_limit: whole(form.elements.per_buyer_limit.value),
    countdown_s: whole(form.elements.countdown_s.value),
    duration_s: whole(form.elements.duration_s.value),
    accounts_only: form.elements.accounts_only.checked,
  };
  const problems = {};
  const sku = skuById(terms.sku_id);
  const [cMin, cMax] = config.limits.countdown_s;
  const [dMin, dMax] = config.limits.duration_s;
  if (!sku) problems.sku_id = t("st_pick_sku");
  if (Number.isNaN(terms.deal_price) || terms.deal_price < 1) problems.deal_price = t("st_price_like");
  else if (sku && terms.deal_price >= sku.list_price) problems.deal_price = t("st_below_list", { price: money(sku.list_price, sku.currency) });
  if (Number.isNaN(terms.quantity) || terms.quantity < 1) problems.quantity = t("st_at_least_1");
  else if (sku && terms.quantity > sku.free) problems.quantity = t("st_at_most_free", { free: sku.free });
  if (Number.isNaN(terms.per_buyer_limit) || terms.per_buyer_limit < 1) problems.per_buyer_limit = t("st_at_least_1");
  else if (!problems.quantity && terms.per_buyer_limit > terms.quantity) problems.per_buyer_limit = t("st_at_most_quantity");
  if (Number.isNaN(terms.countdown_s) || terms.countdown_s < cMin || terms.countdown_s > cMax) problems.countdown_s = `${cMin} to ${cMax} seconds.`;
  if (Number.isNaN(terms.duration_s) || terms.duration_s < dMin || terms.duration_s > dMax) problems.duration_s = `${dMin} to ${dMax} seconds.`;
  return { terms, problems };
}

function showProblems(problems) {
  for (const span of $("deal-form").querySelectorAll(".field-error")) {
    const problem = problems[span.dataset.for] || "";
    span.textContent = problem;
    span.closest("label").querySelector("input, select").setAttribute("aria-invalid", problem ? "true" : "false");
  }
}

$("deal-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("deal-error").textContent = "";
  const { terms, problems } = readDeal();
  showProblems(problems);
  if (Object.keys(problems).length) return;
  $("start-deal").disabled = true;
  try {
    await call("POST", `/api/rooms/${roomId}/deals`, terms);
    const sku = skuById(terms.sku_id);
    if (sku) sku.free -= terms.quantity;
  } catch (error) {
    const fromServer = {};
    for (const p of error.details?.problems || []) fromServer[p.field] = p.problem;
    if (FIELD_OF_CODE[error.code]) fromServer[FIELD_OF_CODE[error.code]] = refusal(error);
    showProblems(fromServer);
    if (!Object.keys(fromServer).length) $("deal-error").textContent = refusal(error);
  } finally {
    $("start-deal").disabled = false;
  }
});

// --- video --------------------------------------------------------------------------------

let camera = null;
let peer = null;
let publishing = false; // a Go live is under way: a second one would be refused (409)

async function startCamera() {
  if (camera) return camera;
  camera = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } },
    audio: true,
  });
  $("preview").srcObject = camera;
  $("preview-status").hidden = true;
  return camera;
}

$("go-live").addEventListener("click", async () => {
  if (publishing || peer) return;
  $("video-error").textContent = "";
  publishing = true;
  $("go-live").disabled = true;
  try {
    const stream = await startCamera();
    peer = await publish(`/whip/${roomId}`, stream, csrf);
    peer.pc.addEventListener("connectionstatechange", () => {
      if (peer && ["failed", "closed"].includes(peer.pc.connectionState)) {
        $("video-error").textContent = t("st_video_dropped");
        peer = null;
        render();
      }
    });
    $("stop-video").hidden = false;
  } catch (error) {
    $("video-error").textContent = error.name === "NotAllowedError" ? t("st_allow_camera") : error.message;
  } finally {
    publishing = false;
  }
  if (state.room) render();
  else $("go-live").disabled = Boolean(peer);
});

async function stopVideo() {
  const old = peer;
  peer = null;
  await old?.close();
  $("stop-video").hidden = true;
  if (state.room) render();
}

$("stop-video").addEventListener("click", stopVideo);

$("end-live").addEventListener("click", async () => {
  if (!confirm(t("st_end_confirm"))) return;
  await stopVideo();
  await act(() => call("POST", `/api/rooms/${roomId}/end`), "video-error");
});

addEventListener("pagehide", () => peer?.close());
startCamera().catch(() => ($("preview-status").textContent = t("st_camera_unavailable")));

// --- figures ------------------------------------------------------------------------------

async function refreshFigures() {
  try {
    const { figures } = await api("GET", `/api/rooms/${roomId}/figures`);
    $("fig-viewers").textContent = figures.viewers;
    $("fig-held").textContent = figures.held;
    $("fig-sold").textContent = figures.units_sold;
    // Money in two currencies never adds up (decision 0053): each currency sold in, side by side.
    const sales = figures.sales.length ? figures.sales : [{ ...figures, gmv: 0, net_gmv: 0 }];
    $("fig-gmv").textContent = sales.map((s) => money(s.gmv, s.currency)).join(" · ");
    $("fig-net-gmv").textContent = sales.map((s) => money(s.net_gmv, s.currency)).join(" · ");
    $("fig-conversion").textContent = `${(figures.conversion * 100).toFixed(1)}%`;
  } catch {
    // the next refresh will tell
  }
}
// The room's last minutes as sparklines (decision 0044): counts reach the route within about
// a second of happening, so a 2 s poll shows them moving.
const SPARKS = ["viewers", "likes", "chat", "impressions", "clicks", "carts", "orders"];
const sparklines = new Sparklines($("sparklines"), SPARKS);
async function refreshAnalytics() {
  try {
    const { analytics } = await api("GET", `/api/rooms/${roomId}/analytics`);
    sparklines.update(analytics.minutes);
  } catch {
    // the next refresh will tell
  }
}
setInterval(() => {
  refreshFigures();
  refreshVouchers();
  refreshAnalytics();
}, 2000);
refreshFigures();
refreshAnalytics();
formats = new Formats({
  roomId,
  call,
  act,
  now: () => socket.now(),
  skuOf(skuId) {
    for (const product of state.room?.bag || []) {
      const sku = product.skus.find((s) => s.sku_id === skuId);
      if (sku) return { product, sku };
    }
    return null;
  },
});
socket.start();
