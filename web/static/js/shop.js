// Buying at list price, in the room and on the storefront: the product sheet (pick the
// options, the quantity, then Add to cart or Buy now), the cart sheet (change quantities,
// check out one shop's items) and the payment sheet of a cart's hold. Every price shown is
// the server's (GET /api/cart); the hold's total is what is charged (docs/protocol.md, Cart).

import { api, clockText, el, guestToken, hasGuest, money, randomId, t } from "./common.js";
import { fillAddress, keepAddress, payHold, readForm, waitForOrder } from "./pay.js";

const $ = (id) => document.getElementById(id);
const PLACEHOLDER = "/static/img/placeholder.svg";
const LOW_STOCK = 5; // fewer left than this: say how many
const WAIT_POLL_MS = 5000; // how often a page asks after the waitlists it joined
const MAX_QTY = 99;

async function call(method, path, body) {
  const token = await guestToken();
  return api(method, path, { body, headers: { Authorization: `Bearer ${token}` } });
}

function errorText(code) {
  const known = t(`error_${code}`);
  return known === `error_${code}` ? t("error_generic") : known;
}

// Subtotal, promotions' and the voucher's savings, shipping: what a cart's shop part or a hold
// adds up to (the total is shown beside the button or below). ``discount`` is every saving;
// the voucher's is its part on the goods plus its part on shipping.
function amounts(a, currency, className) {
  const row = (label, value, name) => el("div", { class: `amount ${name}` }, el("dt", {}, label), el("dd", {}, value));
  const off = (amount) => `−${money(amount, currency)}`;
  const voucherOff = (a.voucher_discount || 0) + a.shipping_discount;
  const promoted = a.discount - voucherOff;
  const rows = [row(t("subtotal"), money(a.subtotal, currency), "subtotal")];
  if (promoted > 0) rows.push(row(t("promotions_line"), off(promoted), "promotion"));
  if (a.voucher) rows.push(row(t("voucher_line", { code: a.voucher }), off(voucherOff), "voucher"));
  rows.push(row(t("shipping_fee"), a.shipping_fee > 0 ? money(a.shipping_fee, currency) : t("free_shipping"), "shipping"));
  return el("dl", { class: className }, ...rows);
}

// The SKU whose values are all the chosen ones (a product without options: the chosen SKU).
// --- promotions on prices -----------------------------------------------------------------
// A shop's promotions as GET /api/shops/{id}/promotions lists them, read at most once a minute
// per shop: the bag and the product sheet show a running discount's price (one unit's, as
// checkout/pricing.py takes it off) and each running bundle. The checkout prices from the
// shop's shelf; these only show it.
const PROMOTIONS_TTL_MS = 60_000;
const promotionsRead = new Map(); // shop id -> { at, list }

export async function promotionsOf(shopId) {
  const known = promotionsRead.get(shopId);
  if (known && Date.now() - known.at < PROMOTIONS_TTL_MS) return known.list;
  try {
    const { promotions } = await api("GET", `/api/shops/${shopId}/promotions`);
    promotionsRead.set(shopId, { at: Date.now(), list: promotions });
    return promotions;
  } catch {
    return known?.list || []; // shown at list price
  }
}

// A product's running discount (its best) and bundles in the price's currency, at ``now``.
export function offerOf(promotions, productId, currency, now) {
  let bps = 0;
  const bundles = [];
  for (const p of promotions || []) {
    if (!(p.starts_ms <= now && now < p.ends_ms) || !p.products.includes(productId)) continue;
    if (p.kind === "discount") bps = Math.max(bps, p.bps);
    else if (p.currency === currency) bundles.push(p);
  }
  return { bps, bundles };
}

// A price as the buyer pays it: the list price struck through and the percentage while a
// discount runs, and each bundle's offer. Without either, just the price.
export function priceTag(price, currency, offer) {
  const sale = price - Math.floor((price * offer.bps) / 10000);
  const parts = [];
  if (sale < price) parts.push(el("s", { class: "was-price" }, money(price, currency)), " ");
  parts.push(el("span", { class: "now-price" }, money(sale, currency)));
  if (sale < price) parts.push(" ", el("span", { class: "promo-badge" }, `−${offer.bps / 100}%`));
  for (const b of offer.bundles) {
    parts.push(" ", el("span", { class: "bundle-note" }, t("bundle_offer", { size: b.size, price: money(b.price, b.currency) })));
  }
  return parts;
}

function chosenSku(card, chosen) {
  if (!card.options?.length) return card.skus.find((s) => s.sku_id === chosen.sku) || null;
  return card.skus.find((s) => card.options.every((o) => s.options?.[o.name] === chosen[o.name])) || null;
}

export class Shop {
  // now(): the server's clock as the page knows it (the room syncs it); onChange(cart): after
  // every change of the cart, e.g. to show its count; roomId(): the live room the page is in
  // (its websocket tells of a unit kept from a waitlist at once), or null.
  constructor({ now = () => Date.now(), onChange = () => {}, roomId = () => null } = {}) {
    this.now = now;
    this.onChange = onChange;
    this.roomId = roomId;
    this.waiting = new Map(); // SKU id -> {shopId, place}: sold-out SKUs we wait for
    this.cart = { lines: [], shops: [], deals: [] };
    this.hold = null;
    this.timer = null;
    $("sheet-add").addEventListener("click", () => this.add());
    $("sheet-buy").addEventListener("click", () => this.buyNow());
    $("sheet-wait").addEventListener("click", () => this.wait());
    setInterval(() => this.checkWaits(), WAIT_POLL_MS);
    $("cart-pay-form").addEventListener("submit", (event) => this.pay(event));
    $("cart-release").addEventListener("click", () => this.release());
    $("cart-pay").addEventListener("close", () => clearInterval(this.timer));
    if (hasGuest()) this.refresh(); // a first visit has no cart (and needs no session yet)
  }

  async refresh() {
    try {
      this.cart = (await call("GET", "/api/cart")).cart;
    } catch {
      return; // shown as it was; the next change tries again
    }
    this.onChange(this.cart);
    if ($("cart-sheet").open) this.drawCart();
  }

  units() {
    const all = [...this.cart.lines, ...(this.cart.deals || [])];
    return all.reduce((n, line) => n + line.qty, 0);
  }

  // A flash deal's item at the deal's price (one more unit, up to its per-buyer limit); the
  // checkout holds it by the deal's own reserve. Rejects with the ApiError.
  async addDeal(deal) {
    const inCart = (this.cart.deals || []).find((line) => line.deal_id === deal.deal_id)?.qty || 0;
    const qty = Math.min(deal.per_buyer_limit, inCart + 1);
    this.cart = (await call("PUT", `/api/cart/deals/${deal.deal_id}`, { qty })).cart;
    this.onChange(this.cart);
    this.toast(t("added_to_cart"));
  }

  // --- the product sheet ----------------------------------------------------------------

  async openProduct(card) {
    this.card = card;
    this.left = {};
    this.chosen = {};
    if (card.options?.length) {
      for (const option of card.options) if (option.values.length === 1) this.chosen[option.name] = option.values[0];
    } else if (card.skus.length === 1) this.chosen.sku = card.skus[0].sku_id;
    this.qty = 1;
    this.promotions = promotionsRead.get(card.shop_id)?.list || [];
    $("sheet-error").textContent = "";
    $("sheet-title").textContent = card.title;
    this.drawProduct();
    if (!$("product-sheet").open) $("product-sheet").showModal();
    const promoted = promotionsOf(card.shop_id);
    try {
      const { stock } = await api("GET", `/api/stock?product_id=${card.product_id}`);
      this.left = Object.fromEntries(Object.entries(stock).map(([id, n]) => [Number(id), n]));
    } catch {
      this.left = {};
    }
    this.promotions = await promoted;
    if (this.card === card) this.drawProduct();
  }

  drawProduct() {
    const card = this.card;
    const sku = chosenSku(card, this.chosen);
    const picture = (sku && sku.image) || card.image || PLACEHOLDER;
    $("sheet-image").src = picture;
    const cheapest = Math.min(...card.skus.map((s) => s.list_price));
    const shown = sku || card.skus.find((s) => s.list_price === cheapest);
    const offer = shown && offerOf(this.promotions, card.product_id, shown.currency, this.now());
    $("sheet-price").replaceChildren(...(shown ? priceTag(shown.list_price, shown.currency, offer) : []));
    const groups = card.options?.length
      ? card.options.map((option) => this.optionGroup(option))
      : card.skus.length > 1 ? [this.skuGroup()] : [];
    $("sheet-options").replaceChildren(...groups);
    const left = sku ? this.left[sku.sku_id] : undefined;
    const soldOut = left === 0;
    const waited = sku && this.waiting.get(sku.sku_id);
    $("sheet-stock").textContent = waited ? t("waitlist_place", { place: waited.place })
      : soldOut ? t("sold_out") : left !== undefined && left < LOW_STOCK ? t("only_left", { left }) : "";
    $("sheet-wait").hidden = !soldOut || Boolean(waited);
    this.qty = Math.max(1, Math.min(this.qty, left || MAX_QTY, MAX_QTY));
    $("sheet-qty").textContent = String(this.qty);
    const ready = Boolean(sku) && !soldOut;
    $("sheet-add").disabled = !ready;
    $("sheet-buy").disabled = !ready;
    $("sheet-less").onclick = () => this.step(-1);
    $("sheet-more").onclick = () => this.step(1);
  }

  step(by) {
    this.qty += by;
    this.drawProduct();
  }

  optionGroup(option) {
    const buttons = option.values.map((value) => {
      // A value no SKU has together with the other choices cannot be picked.
      const others = { ...this.chosen, [option.name]: value };
      const exists = this.card.skus.some((s) =>
        this.card.options.every((o) => o.name === option.name ? s.options?.[o.name] === value : !(o.name in others) || s.options?.[o.name] === others[o.name]),
      );
      return el("button", {
        type: "button",
        class: "choice",
        dir: "auto",
        "aria-pressed": this.chosen[option.name] === value ? "true" : "false",
        disabled: !exists,
        onclick: () => {
          this.chosen[option.name] = value;
          this.drawProduct();
        },
      }, value);
    });
    return el("fieldset", { class: "choices" }, el("legend", { dir: "auto" }, option.name), ...buttons);
  }

  skuGroup() {
    const buttons = this.card.skus.map((sku) =>
      el("button", {
        type: "button",
        class: "choice",
        dir: "auto",
        "aria-pressed": this.chosen.sku === sku.sku_id ? "true" : "false",
        onclick: () => {
          this.chosen.sku = sku.sku_id;
          this.drawProduct();
        },
      }, sku.variant || this.card.title),
    );
    return el("fieldset", { class: "choices" }, el("legend", {}, t("variants")), ...buttons);
  }

  async add() {
    const sku = chosenSku(this.card, this.chosen);
    if (!sku) return;
    const inCart = this.cart.lines.find((line) => line.sku_id === sku.sku_id)?.qty || 0;
    $("sheet-add").disabled = true;
    try {
      this.cart = (await call("PUT", `/api/cart/items/${sku.sku_id}`, { qty: Math.min(MAX_QTY, inCart + this.qty) })).cart;
      this.onChange(this.cart);
      $("product-sheet").close();
      this.toast(t("added_to_cart"));
    } catch (error) {
      $("sheet-error").textContent = errorText(error.code);
    } finally {
      $("sheet-add").disabled = false;
    }
  }

  async buyNow() {
    const sku = chosenSku(this.card, this.chosen);
    if (!sku) return;
    $("sheet-buy").disabled = true;
    try {
      const held = await call("POST", "/api/cart/checkout", {
        items: [{ sku_id: sku.sku_id, qty: this.qty }],
        shop_id: this.card.shop_id,
        request_id: `buy-${randomId()}`,
      });
      $("product-sheet").close();
      this.openPay(held);
    } catch (error) {
      $("sheet-error").textContent = errorText(error.code);
    } finally {
      $("sheet-buy").disabled = false;
    }
  }

  // --- a sold-out SKU's waitlist ---------------------------------------------------------

  async wait() {
    const sku = chosenSku(this.card, this.chosen);
    if (!sku) return;
    $("sheet-wait").disabled = true;
    try {
      const { waitlist } = await call("POST", `/api/skus/${sku.sku_id}/waitlist`, { room_id: this.roomId() });
      this.waiting.set(sku.sku_id, { shopId: this.card.shop_id, place: waitlist.place });
      this.drawProduct();
    } catch (error) {
      $("sheet-error").textContent = errorText(error.code);
    } finally {
      $("sheet-wait").disabled = false;
    }
  }

  // A unit kept for us (told by the room's websocket, or found by asking): check it out at
  // once, priced as any checkout, and open the payment.
  async takeKept(skuId, shopId, holdId) {
    if (this.taking === holdId) return;
    this.taking = holdId;
    this.waiting.delete(skuId);
    try {
      const held = await call("POST", "/api/cart/checkout", {
        items: [{ sku_id: skuId, qty: 1 }],
        shop_id: shopId,
        request_id: `kept-${holdId}`,
      });
      if ($("product-sheet").open) $("product-sheet").close();
      this.openPay(held);
    } catch (error) {
      this.toast(errorText(error.code));
    }
  }

  // Without a room's websocket (or if its notice was missed): ask now and then.
  async checkWaits() {
    for (const [skuId, { shopId }] of this.waiting) {
      try {
        const { waitlist } = await call("GET", `/api/skus/${skuId}/waitlist`);
        const kept = waitlist.holds[0];
        if (kept) this.takeKept(skuId, shopId, kept.id);
        else if (waitlist.place) this.waiting.set(skuId, { shopId, place: waitlist.place });
      } catch {
        // asked again at the next round
      }
    }
  }

  toast(text) {
    const note = $("shop-toast");
    note.textContent = text;
    note.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (note.hidden = true), 2500);
  }

  // --- the cart sheet -------------------------------------------------------------------

  async openCart() {
    $("cart-error").textContent = "";
    this.drawCart();
    if (!$("cart-sheet").open) $("cart-sheet").showModal();
    await this.refresh();
  }

  drawCart() {
    const { lines, shops } = this.cart;
    const deals = this.cart.deals || [];
    $("cart-empty").hidden = lines.length + deals.length > 0;
    const groups = [];
    if (deals.length) {
      // Deal items: each held by its deal and paid with the rest of the cart.
      groups.push(el("section", { class: "cart-deals" },
        el("ul", { class: "cart-lines" }, ...deals.map((line) => this.cartDealLine(line)))));
    }
    groups.push(...shops.map((shop) => {
      const mine = lines.filter((line) => line.shop_id === shop.shop_id && line.currency === shop.currency);
      return el(
        "section",
        { class: "cart-shop", dataset: { shopId: shop.shop_id } },
        el("ul", { class: "cart-lines" }, ...mine.map((line) => this.cartLine(line))),
        amounts(shop, shop.currency, "cart-amounts"),
        el("button", {
          type: "button",
          class: "primary cart-checkout",
          onclick: (event) => this.checkout(shop, event.currentTarget),
        }, t("cart_checkout", { amount: money(shop.total, shop.currency) })),
      );
    }));
    // Several shops, or deal items, in one currency: one checkout holds them all and one
    // payment pays them (an order per shop and per deal item).
    const parts = [...shops, ...deals];
    const currencies = new Set(parts.map((part) => part.currency));
    if ((shops.length > 1 || deals.length > 0) && currencies.size === 1) {
      const total = parts.reduce((sum, part) => sum + part.total, 0);
      groups.push(el("button", {
        type: "button",
        class: "primary cart-checkout-all",
        onclick: (event) => this.checkoutAll(shops, total, event.currentTarget),
      }, t("cart_checkout_all", { amount: money(total, parts[0].currency) })));
    }
    $("cart-shops").replaceChildren(...groups);
  }

  cartDealLine(line) {
    const set = async (qty) => {
      try {
        this.cart = (await call("PUT", `/api/cart/deals/${line.deal_id}`, { qty })).cart;
        this.onChange(this.cart);
        this.drawCart();
      } catch (error) {
        $("cart-error").textContent = errorText(error.code);
      }
    };
    return el(
      "li",
      { class: "cart-line cart-deal", dataset: { dealId: line.deal_id } },
      el("img", { src: line.image_url || PLACEHOLDER, alt: "", width: 48, height: 48 }),
      el("span", { class: "cart-item" },
        el("span", { class: "badge deal" }, t("deal_badge")), " ",
        el("bdi", { class: "cart-title" }, line.title), " ", el("bdi", { class: "muted" }, line.variant)),
      el("span", { class: "stepper" },
        el("button", { type: "button", "aria-label": t("less"), onclick: () => set(line.qty - 1) }, "−"),
        el("output", { class: "qty" }, String(line.qty)),
        el("button", { type: "button", "aria-label": t("more"), disabled: line.qty >= line.per_buyer_limit, onclick: () => set(line.qty + 1) }, "+"),
      ),
      el("span", { class: "price" }, money(line.total, line.currency)),
    );
  }

  async checkoutAll(shops, total, button) {
    button.disabled = true;
    $("cart-error").textContent = "";
    try {
      const vouchers = shops.filter((shop) => shop.voucher).map((shop) => ({ shop_id: shop.shop_id, code: shop.voucher }));
      const body = { expected_total: total, request_id: `cart-${randomId()}` };
      if (vouchers.length) body.vouchers = vouchers;
      const held = await call("POST", "/api/cart/checkout", body);
      $("cart-sheet").close();
      this.openPay(held);
    } catch (error) {
      $("cart-error").textContent = errorText(error.code);
      if (error.code === "quote_changed") await this.refresh();
    } finally {
      button.disabled = false;
    }
  }

  cartLine(line) {
    const set = async (qty) => {
      try {
        this.cart = (await call("PUT", `/api/cart/items/${line.sku_id}`, { qty })).cart;
        this.onChange(this.cart);
        this.drawCart();
      } catch (error) {
        $("cart-error").textContent = errorText(error.code);
      }
    };
    return el(
      "li",
      { class: "cart-line", dataset: { skuId: line.sku_id } },
      el("img", { src: line.image_url || PLACEHOLDER, alt: "", width: 48, height: 48 }),
      el("span", { class: "cart-item" }, el("bdi", { class: "cart-title" }, line.title), " ", el("bdi", { class: "muted" }, line.variant)),
      el("span", { class: "stepper" },
        el("button", { type: "button", "aria-label": t("less"), onclick: () => set(line.qty - 1) }, "−"),
        el("output", { class: "qty" }, String(line.qty)),
        el("button", { type: "button", "aria-label": t("more"), disabled: line.qty >= MAX_QTY, onclick: () => set(line.qty + 1) }, "+"),
      ),
      el("span", { class: "price" }, money(line.total, line.currency)),
    );
  }

  async checkout(shop, button) {
    button.disabled = true;
    $("cart-error").textContent = "";
    try {
      // The best voucher the cart showed is the one redeemed; the total shown is the one
      // expected, so anything that moved since is refused rather than charged.
      const body = { shop_id: shop.shop_id, expected_total: shop.total, request_id: `cart-${randomId()}` };
      if (shop.voucher) body.voucher = shop.voucher;
      const held = await call("POST", "/api/cart/checkout", body);
      $("cart-sheet").close();
      this.openPay(held);
    } catch (error) {
      $("cart-error").textContent = errorText(error.code);
      if (error.code === "quote_changed") await this.refresh();
    } finally {
      button.disabled = false;
    }
  }

  // --- paying for a cart's hold ---------------------------------------------------------

  openPay({ holds, total, currency }) {
    // One hold, or one per shop (paid together): the sheet shows every line, each hold's
    // amounts, the sum, and the earliest deadline.
    const expires = Math.min(...holds.map((hold) => hold.expires_ms));
    this.hold = { ...holds[0], ids: holds.map((hold) => hold.id), expires_ms: expires, total, currency };
    const lines = holds.flatMap((hold) => hold.lines).map((line) => {
      const known = [...this.cart.lines, ...(this.cart.deals || [])].find((l) => l.sku_id === line.sku_id);
      const name = known ? `${known.title} ${known.variant}`.trim() : `#${line.sku_id}`;
      return el("li", {}, el("bdi", {}, name), ` × ${line.qty} `, el("span", { class: "price" }, money(line.qty * line.unit_price, currency)));
    });
    $("cart-hold-lines").replaceChildren(...lines);
    const shopHolds = holds.filter((hold) => !hold.deal_id); // a deal item's is its line's price
    $("cart-hold-amounts").replaceChildren(...shopHolds.map((hold) => amounts(hold, currency, "hold-amounts")));
    $("cart-hold-total").textContent = money(total, currency);
    $("cart-pay-submit").textContent = t("pay", { amount: money(total, currency) });
    $("cart-pay-error").textContent = "";
    $("cart-pay-view").hidden = false;
    $("cart-done").hidden = true;
    fillAddress($("cart-pay-form"));
    if (!$("cart-pay").open) $("cart-pay").showModal();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
  }

  tick() {
    const left = this.hold.expires_ms - this.now();
    $("cart-hold-timer").textContent = t("hold_pay_within", { time: clockText(left) });
    if (left <= 0 && !this.hold.payKey && !this.hold.paid) {
      clearInterval(this.timer);
      $("cart-pay").close();
      this.toast(t("hold_expired"));
    }
  }

  async pay(event) {
    event.preventDefault();
    const hold = this.hold;
    const body = readForm($("cart-pay-form"));
    if (!hold || !body) {
      $("cart-pay-error").textContent = t("error_required");
      return;
    }
    const submit = $("cart-pay-submit");
    submit.disabled = true;
    submit.textContent = t("paying");
    try {
      const paid = await payHold(hold, body);
      const orders = Array.isArray(paid) ? paid : [paid];
      hold.paid = true;
      keepAddress($("cart-pay-form"), body.shipping);
      clearInterval(this.timer);
      $("cart-pay-view").hidden = true;
      $("cart-done").hidden = false;
      $("cart-order-number").textContent = t("order_confirming");
      const numbers = [];
      for (const order of orders) {
        waitForOrder(order.hold_id, (found) => {
          numbers.push(found.id);
          if (numbers.length < orders.length) return;
          const ids = numbers.sort((a, b) => a - b);
          $("cart-order-number").textContent = ids.map((id) => t("order_number", { id })).join(" · ");
          $("cart-order-number").dataset.orderId = ids.join(",");
        }, () => this.hold === hold);
      }
      this.refresh(); // the bought items left the cart
    } catch (error) {
      $("cart-pay-error").textContent = errorText(error.code);
    } finally {
      submit.disabled = false;
      submit.textContent = t("pay", { amount: money(hold.total, hold.currency) });
    }
  }

  async release() {
    const hold = this.hold;
    if (!hold) return;
    for (const id of hold.ids) {
      try {
        await call("DELETE", `/api/holds/${id}`);
      } catch {
        // lapsed or gone already: either way it holds nothing now
      }
    }
    clearInterval(this.timer);
    $("cart-pay").close();
  }
}
