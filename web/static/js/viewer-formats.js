// The viewer's selling formats beyond the flash deal (decisions 0031-0033): the auction panel
// (price, leader, the close on the server's clock, bid buttons, outbid and won), the giveaway
// (one tap to enter, the draw and how to check it), comment-to-buy's hint and badges, a sold-out
// deal's waitlist, and likes with floating hearts. Every hold these end in is paid in the
// page's one checkout sheet (``pay``).

import { api, clockText, el, guestToken, minorUnits, money, randomId, t } from "./common.js";
import { fillAddress, readForm, waitForOrder } from "./pay.js";

const $ = (id) => document.getElementById(id);
const LIKES_PER_SECOND = 5; // what one viewer's taps may send; the server caps it again

export class ViewerFormats {
  constructor({ socket, state, pay, errorText, takeKept }) {
    this.takeKept = takeKept; // a unit kept for us from a list-price SKU's waitlist
    this.socket = socket;
    this.state = state;
    this.pay = pay; // (hold, {title, amount, currency}) -> the checkout sheet
    this.errorText = errorText;
    this.auctions = new Map();
    this.giveaways = new Map();
    this.entered = new Set();
    this.standing = {}; // auction id -> "leading" | "outbid"
    this.paying = new Set(); // holds won here whose checkout sheet was opened
    this.orders = {}; // auction id -> the order number of our win
    this.likes = 0;
    this.pendingLikes = 0;
    this.likeBudget = LIKES_PER_SECOND;
    $("bid-min").addEventListener("click", () => this.bid(this.current()?.min_bid));
    $("bid-form").addEventListener("submit", (event) => this.bidMax(event));
    $("buy-now").addEventListener("click", () => this.bid(0, true));
    $("giveaway-enter").addEventListener("click", () => this.enter());
    $("waitlist-join").addEventListener("click", () => this.joinWaitlist());
    $("lot-wait").addEventListener("click", () => this.waitForLot());
    this.places = {}; // auction id -> our place on its lot's waitlist
    $("like-button").addEventListener("click", () => this.like());
    $("card-form").addEventListener("submit", (event) => this.saveCard(event));
    this.pendingBid = null; // the bid waiting for a card on file
    $("video").addEventListener("dblclick", () => this.like());
    setInterval(() => this.flushLikes(), 1000);
    setInterval(() => this.tick(), 250);
  }

  snapshot(m) {
    this.auctions = new Map((m.auctions || []).map((a) => [a.auction_id, a]));
    this.giveaways = new Map((m.giveaways || []).map((g) => [g.giveaway_id, g]));
    this.likes = m.likes || 0;
    this.render();
  }

  // Handlers by message type, merged into the page's.
  handlers() {
    const auction = (m) => {
      this.auctions.set(m.auction.auction_id, m.auction);
      // Won, says the room: if the private auction.won is lost (a node died between the
      // award and the notice), ask for the hold.
      if (m.auction.winner && m.auction.winner === this.user() && !m.auction.card_required) this.fetchWin("auctions", m.auction.auction_id);
      if (m.type === "auction.bid" && m.auction.leader === this.user()) this.standing[m.auction.auction_id] = "leading";
      else if (m.type === "auction.bid" && this.standing[m.auction.auction_id] === "leading") this.standing[m.auction.auction_id] = "outbid";
      if (m.extended) this.flash($("auction-clock"));
      this.render();
    };
    const giveaway = (m) => {
      this.giveaways.set(m.giveaway.giveaway_id, m.giveaway);
      if (m.giveaway.winner && m.giveaway.winner === this.user()) this.fetchWin("giveaways", m.giveaway.giveaway_id);
      this.render();
    };
    return {
      "auction.started": auction,
      "auction.bid": auction,
      "auction.closed": auction,
      "auction.offered": auction,
      "auction.relisted": (m) => {
        delete this.standing[m.auction.auction_id];
        delete this.places[m.auction.auction_id];
        auction(m);
      },
      "auction.sold": auction,
      "auction.outbid": (m) => {
        this.standing[m.auction_id] = "outbid";
        this.render();
      },
      "auction.won": (m) => {
        if (this.paying.has(m.hold.id)) return;
        this.paying.add(m.hold.id);
        const a = this.auctions.get(m.auction_id);
        if (a?.card_required) {
          // Charged to the card on file in a moment: auction.paid (or charge_failed) follows.
          $("auction-standing").textContent = t("auction_charging");
          return;
        }
        this.pay(m.hold, { title: a ? this.title(a.sku_id) : "", amount: m.price, currency: a ? this.currency(a.sku_id) : undefined });
      },
      "auction.paid": (m) => {
        $("auction-standing").textContent = t("auction_paid");
        waitForOrder(m.hold_id, (order) => {
          this.orders[m.auction_id] = order.id;
          this.render();
        }, () => true);
      },
      "auction.charge_failed": (m) => {
        const a = this.auctions.get(m.auction_id);
        this.pay(m.hold, { title: a ? this.title(a.sku_id) : "", amount: a?.hammer_price, currency: a ? this.currency(a.sku_id) : undefined });
      },
      "bid.accepted": (m) => {
        this.pendingBid = null;
        $("bid-error").textContent = "";
        this.standing[m.bid.auction_id] = m.bid.outcome === "outbid" ? "outbid" : "leading";
        this.render();
      },
      "giveaway.started": giveaway,
      "giveaway.drawn": giveaway,
      "giveaway.won": (m) => {
        if (this.paying.has(m.hold.id)) return;
        this.paying.add(m.hold.id);
        const g = this.giveaways.get(m.giveaway_id);
        this.pay(m.hold, { title: g ? this.title(g.sku_id) : "", amount: 0, currency: g ? this.currency(g.sku_id) : undefined });
      },
      likes: (m) => {
        this.likes = Math.max(this.likes, m.count);
        $("likes-count").textContent = this.likes || "";
      },
      comment_buy: (m) => {
        this.state.room.comment_buy = m.keywords.length ? { keywords: m.keywords } : null;
        this.render();
      },
      "chat.claimed": (m) => {
        const line = document.querySelector(`#chat-lines [data-seq="${m.chat_seq}"]`);
        if (line && !line.querySelector(".claimed")) line.append(el("span", { class: "badge claimed" }, t("claimed")));
      },
      "claim.granted": (m) => this.pay(m.hold, { amount: m.hold.total ?? null }),
      "claim.refused": (m) => {
        $("chat-error").textContent = this.errorText(m.code);
      },
      "waitlist.offered": (m) => {
        if (m.sku_id) {
          this.takeKept(m);
          return;
        }
        $("waitlist-text").textContent = "";
        this.pay({ ...m.hold, deal_id: m.deal_id }, {});
      },
    };
  }

  // A few seconds after the room said we won, unless the private notice came: our hold.
  fetchWin(kind, id) {
    setTimeout(async () => {
      const won = kind === "auctions" ? "auction.won" : "giveaway.won";
      try {
        const token = await guestToken();
        const found = await api("GET", `/api/rooms/${this.state.room.id}/${kind}/${id}`, { headers: { Authorization: `Bearer ${token}` } });
        const item = found.auction || found.giveaway;
        const hold = item?.your_hold;
        if (!hold || this.paying.has(hold.id)) return;
        this.handlers()[won]({ [kind === "auctions" ? "auction_id" : "giveaway_id"]: id, price: item.hammer_price ?? 0, hold: { id: hold.id, qty: 1, state: "held", expires_ms: hold.pay_by_ms } });
      } catch {
        // the page still shows who won; the orders page will show the order once paid
      }
    }, 3000);
  }

  // A refusal of one of our requests (an error frame with our ref); true if it was ours.
  refused(m) {
    if (!m.ref?.startsWith("bid-")) return false;
    if (m.code === "payment_method_required") {
      fillAddress($("card-form"));
      $("card-error").textContent = "";
      $("card-sheet").showModal();
      return true;
    }
    $("bid-error").textContent = this.errorText(m.code);
    return true;
  }

  async saveCard(event) {
    event.preventDefault();
    const body = readForm($("card-form"));
    if (!body) {
      $("card-error").textContent = t("error_required");
      return;
    }
    $("card-save").disabled = true;
    try {
      const token = await guestToken();
      await api("PUT", "/api/payment-method", { body, headers: { Authorization: `Bearer ${token}` } });
      $("card-sheet").close();
      const pending = this.pendingBid;
      this.pendingBid = null;
      if (pending) this.bid(pending.amount, pending.buyNow);
    } catch (error) {
      $("card-error").textContent = this.errorText(error.code);
    } finally {
      $("card-save").disabled = false;
    }
  }

  user() {
    return this.socket.user;
  }

  productOf(skuId) {
    for (const product of this.state.room?.bag || []) {
      const sku = product.skus.find((s) => s.sku_id === skuId);
      if (sku) return { product, sku };
    }
    return null;
  }

  title(skuId) {
    const found = this.productOf(skuId);
    return found ? found.product.title + (found.sku.variant ? ` · ${found.sku.variant}` : "") : "";
  }

  currency(skuId) {
    return this.productOf(skuId)?.sku.currency || "USD";
  }

  // The auction on screen: the newest one still open, else the newest one.
  current() {
    const all = [...this.auctions.values()];
    return all.filter((a) => a.state === "open").at(-1) || all.at(-1) || null;
  }

  render() {
    this.renderAuction();
    this.renderGiveaway();
    const keywords = this.state.room?.comment_buy?.keywords || [];
    $("comment-hint").hidden = !keywords.length || this.state.room.status !== "live";
    if (keywords.length) $("comment-hint").textContent = t("comment_hint", { keyword: keywords[0] });
    $("likes-count").textContent = this.likes || "";
  }

  renderAuction() {
    const a = this.current();
    $("auction-panel").hidden = !a;
    if (!a) return;
    const currency = this.currency(a.sku_id);
    const panel = $("auction-panel");
    panel.dataset.state = a.state;
    panel.dataset.auctionId = a.auction_id;
    $("auction-item").textContent = this.title(a.sku_id);
    $("auction-price").textContent = a.bids ? t("auction_price", { price: money(a.price, currency) }) : t("auction_starts", { price: money(a.start_price, currency) });
    const mine = a.leader && a.leader === this.user();
    const open = a.state === "open";
    let standing = "";
    if (open && mine) standing = t("auction_you_lead");
    else if (open && this.standing[a.auction_id] === "outbid") standing = t("auction_outbid");
    else if (open && a.leader) standing = t("auction_leader", { name: a.leader_name || "?" });
    else if (a.winner && a.winner === this.user() && this.orders[a.auction_id]) standing = t("order_number", { id: this.orders[a.auction_id] });
    else if (a.winner && a.winner === this.user()) standing = a.state === "sold" ? t("auction_paid") : a.card_required ? t("auction_charging") : t("auction_you_won");
    else if (a.winner && this.places[a.auction_id] && a.state !== "sold") standing = t("waitlist_place", { place: this.places[a.auction_id] });
    else if (a.winner) standing = t("auction_sold", { name: a.winner_name || "?", price: money(a.hammer_price, currency) });
    else if (a.state === "unsold") standing = t("auction_unsold");
    $("auction-standing").textContent = standing;
    $("auction-standing").dataset.standing = open ? (mine ? "leading" : this.standing[a.auction_id] || "") : a.state;
    $("bid-min").textContent = t("auction_bid", { amount: money(a.min_bid, currency) });
    $("bid-min").disabled = !open || mine;
    $("bid-form").hidden = !open;
    $("buy-now").hidden = !open || !a.buy_now_price || a.bids > 0;
    // Closed with someone else winning, not paid yet: wait in line in case they do not pay.
    const waitable = (a.state === "closed" || a.state === "awarded") && a.winner !== this.user();
    $("lot-wait").hidden = !waitable || Boolean(this.places[a.auction_id]);
    if (a.buy_now_price) $("buy-now").textContent = t("auction_buy_now", { price: money(a.buy_now_price, currency) });
    this.tick();
  }

  renderGiveaway() {
    const all = [...this.giveaways.values()];
    const g = all.filter((x) => x.state === "open").at(-1) || all.at(-1) || null;
    $("giveaway-panel").hidden = !g;
    if (!g) return;
    $("giveaway-panel").dataset.state = g.state;
    $("giveaway-item").textContent = this.title(g.sku_id);
    $("giveaway-entries").textContent = t("giveaway_entries", { count: g.entries });
    const entered = this.entered.has(g.giveaway_id);
    $("giveaway-enter").hidden = g.state !== "open";
    $("giveaway-enter").disabled = entered;
    $("giveaway-enter").textContent = entered ? t("giveaway_entered") : t("giveaway_enter");
    let result = "";
    if (g.winner) result = g.winner === this.user() ? t("giveaway_you_won") : t("giveaway_winner");
    else if (g.state === "void") result = t("giveaway_void");
    $("giveaway-result").textContent = result;
    const check = $("giveaway-check");
    check.hidden = !g.seed;
    if (g.seed) check.href = `/api/rooms/${this.state.room.id}/giveaways/${g.giveaway_id}/entries`;
  }

  tick() {
    const now = this.socket.now();
    const a = this.current();
    if (a && !$("auction-panel").hidden) {
      $("auction-clock").textContent = a.state === "open" ? t("auction_closes_in", { time: clockText(a.ends_ms - now) }) : "";
      $("auction-clock").dataset.endsMs = a.ends_ms;
    }
    const g = [...this.giveaways.values()].filter((x) => x.state === "open").at(-1);
    if (g) $("giveaway-clock").textContent = t("auction_closes_in", { time: clockText(g.ends_ms - now) });
    else $("giveaway-clock").textContent = "";
  }

  flash(node) {
    node.classList.remove("flash");
    void node.offsetWidth; // restart the animation
    node.classList.add("flash");
  }

  bid(amount, buyNow = false) {
    const a = this.current();
    if (!a || (!buyNow && !amount)) return;
    $("bid-error").textContent = "";
    this.pendingBid = { amount, buyNow };
    const message = { type: "bid", auction_id: a.auction_id, ref: `bid-${randomId()}` };
    if (buyNow) message.buy_now = true;
    else message.amount = amount;
    if (!this.socket.send(message)) $("bid-error").textContent = t("error_network");
  }

  bidMax(event) {
    event.preventDefault();
    const a = this.current();
    if (!a) return;
    const amount = minorUnits($("bid-max").value.replace(",", "."), this.currency(a.sku_id));
    if (Number.isNaN(amount) || amount <= 0) {
      $("bid-error").textContent = t("error_bid_too_low");
      return;
    }
    this.bid(amount);
  }

  async enter() {
    const g = [...this.giveaways.values()].filter((x) => x.state === "open").at(-1);
    if (!g) return;
    $("giveaway-enter").disabled = true;
    try {
      const token = await guestToken();
      const { entries } = await api("POST", `/api/rooms/${this.state.room.id}/giveaways/${g.giveaway_id}/entries`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      this.entered.add(g.giveaway_id);
      g.entries = Math.max(g.entries, entries);
      $("giveaway-error").textContent = "";
    } catch (error) {
      $("giveaway-error").textContent = this.errorText(error.code);
    }
    this.renderGiveaway();
  }

  // A place in line for the current auction's lot, at its hammer price (a card on file first,
  // when the auction takes cards: it is charged if the lot comes to us).
  async waitForLot() {
    const a = this.current();
    if (!a) return;
    $("bid-error").textContent = "";
    try {
      const token = await guestToken();
      const { waitlist } = await api("POST", `/api/rooms/${this.state.room.id}/auctions/${a.auction_id}/waitlist`, {
        body: {},
        headers: { Authorization: `Bearer ${token}` },
      });
      this.places[a.auction_id] = waitlist.place;
    } catch (error) {
      if (error.code === "payment_method_required") {
        fillAddress($("card-form"));
        $("card-sheet").showModal();
        return;
      }
      $("bid-error").textContent = this.errorText(error.code);
    }
    this.renderAuction();
  }

  // The card's deal is sold out: offer the waitlist (the page calls this when it renders).
  showWaitlist(deal, soldOut) {
    const button = $("waitlist-join");
    button.hidden = !deal || !soldOut || deal.status === "ended";
    if (!button.hidden) button.dataset.dealId = deal.deal_id;
  }

  async joinWaitlist() {
    const dealId = Number($("waitlist-join").dataset.dealId);
    if (!dealId) return;
    try {
      const token = await guestToken();
      const { waitlist } = await api("POST", `/api/deals/${dealId}/waitlist`, { headers: { Authorization: `Bearer ${token}` } });
      $("waitlist-text").textContent = t("waitlist_place", { place: waitlist.place });
    } catch (error) {
      $("waitlist-text").textContent = this.errorText(error.code);
    }
  }

  like() {
    if (this.likeBudget <= 0) return;
    this.likeBudget -= 1;
    this.pendingLikes += 1;
    this.likes += 1;
    $("likes-count").textContent = this.likes;
    const heart = el("span", { class: "heart", "aria-hidden": "true" }, "♥");
    heart.style.insetInlineStart = `${10 + Math.random() * 60}%`;
    $("hearts").append(heart);
    setTimeout(() => heart.remove(), 1600);
  }

  // Taps leave at most once a second, counted together (the server coalesces them too).
  flushLikes() {
    this.likeBudget = LIKES_PER_SECOND;
    if (!this.pendingLikes) return;
    if (this.socket.send({ type: "like", count: Math.min(this.pendingLikes, 50) })) this.pendingLikes = 0;
  }
}
