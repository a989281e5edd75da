// The studio's selling formats beyond the flash deal (decisions 0031-0033): start an auction or
// a giveaway on a bag SKU, follow them live (price, leader, close; entries, draw), end a
// giveaway's entries early, and turn comment-to-buy on or off. Fed by the room's websocket.

import { clockText, el, minorUnits, money, t } from "./common.js";

const $ = (id) => document.getElementById(id);

export class Formats {
  constructor({ roomId, call, act, now, skuOf }) {
    this.roomId = roomId;
    this.call = call;
    this.act = act;
    this.now = now; // the server's clock
    this.skuOf = skuOf; // sku id -> { sku, product } from the bag
    this.auctions = new Map();
    this.giveaways = new Map();
    this.keywords = [];
    $("auction-form").addEventListener("submit", (event) => this.startAuction(event));
    $("giveaway-form").addEventListener("submit", (event) => this.startGiveaway(event));
    $("comment-form").addEventListener("submit", (event) => this.commentOn(event));
    $("comment-off").addEventListener("click", () =>
      this.act(() => this.call("DELETE", `/api/rooms/${this.roomId}/comment-to-buy`), "comment-error"),
    );
    setInterval(() => this.render(), 1000);
  }

  snapshot(m) {
    this.auctions = new Map((m.auctions || []).map((a) => [a.auction_id, a]));
    this.giveaways = new Map((m.giveaways || []).map((g) => [g.giveaway_id, g]));
    this.keywords = m.room.comment_buy?.keywords || [];
    this.render();
  }

  // True when the message was one of ours.
  event(m) {
    if (m.type.startsWith("auction.")) this.auctions.set(m.auction.auction_id, m.auction);
    else if (m.type.startsWith("giveaway.")) this.giveaways.set(m.giveaway.giveaway_id, m.giveaway);
    else if (m.type === "comment_buy") this.keywords = m.keywords;
    else return false;
    this.render();
    return true;
  }

  title(skuId) {
    const found = this.skuOf(skuId);
    if (!found) return `SKU ${skuId}`;
    return found.product.title + (found.sku.variant ? ` · ${found.sku.variant}` : "");
  }

  currency(skuId) {
    return this.skuOf(skuId)?.sku.currency || "USD";
  }

  render() {
    const now = this.now();
    for (const id of ["auction-sku", "giveaway-sku"]) {
      const select = $(id);
      const chosen = select.value;
      select.replaceChildren(...[...$("deal-sku").options].map((o) => o.cloneNode(true)));
      if (chosen) select.value = chosen;
    }
    $("auctions").replaceChildren(
      ...[...this.auctions.values()].map((a) => {
        const price = a.bids ? money(a.price, this.currency(a.sku_id)) : t("st_starts_at", { price: money(a.start_price, this.currency(a.sku_id)) });
        const open = a.state === "open" ? t("st_closes_in", { time: clockText(a.ends_ms - now) }) : t(`sc_lot_state_${a.state}`);
        const when = a.relisted ? `${open}, ${t("st_relisted", { n: a.relisted })}` : open;
        const who = a.winner_name || a.leader_name || a.winner || a.leader || t("st_no_bids");
        return el("li", { class: "auction-item", dataset: { auctionId: a.auction_id, state: a.state } },
          `${this.title(a.sku_id)}: ${price}, ${t("st_n_bids", { n: a.bids })}, ${who}, ${when}`);
      }),
    );
    $("giveaways").replaceChildren(
      ...[...this.giveaways.values()].map((g) => {
        const when = g.state === "open" ? t("st_entries_close_in", { time: clockText(g.ends_ms - now) }) : t(`sc_lot_state_${g.state}`);
        const winner = g.winner ? `, ${t("st_winner", { name: g.winner.slice(0, 8) })}` : "";
        return el("li", { class: "giveaway-item", dataset: { giveawayId: g.giveaway_id, state: g.state } },
          el("span", {}, `${this.title(g.sku_id)}: ${t("st_n_entries", { n: g.entries })}${winner}, ${when}`),
          g.state === "open"
            ? el("button", { type: "button", class: "secondary", onclick: () => this.act(() => this.call("POST", `/api/rooms/${this.roomId}/giveaways/${g.giveaway_id}/close`), "giveaway-error") }, t("st_draw_now"))
            : null,
        );
      }),
    );
    $("comment-now").textContent = this.keywords.length
      ? t("st_comment_on", { keywords: this.keywords.join(" / ") })
      : t("st_off");
    $("comment-off").hidden = !this.keywords.length;
  }

  async startAuction(event) {
    event.preventDefault();
    const form = $("auction-form");
    const skuId = Number(form.elements.sku_id.value);
    const currency = this.currency(skuId);
    const amount = (name) => (form.elements[name].value.trim() ? minorUnits(form.elements[name].value, currency) : 0);
    const terms = {
      sku_id: skuId,
      start_price: amount("start_price"),
      duration_s: Number(form.elements.duration_s.value),
      mode: form.elements.mode.value,
      snipe_s: Number(form.elements.snipe_s.value),
      reserve_price: amount("reserve_price"),
      buy_now_price: amount("buy_now_price"),
      relists: Number(form.elements.relists.value),
      accounts_only: form.elements.accounts_only.checked,
    };
    $("auction-error").textContent = "";
    if ([terms.start_price, terms.reserve_price, terms.buy_now_price].some(Number.isNaN)) {
      $("auction-error").textContent = t("st_amounts_like");
      return;
    }
    await this.act(() => this.call("POST", `/api/rooms/${this.roomId}/auctions`, terms), "auction-error");
  }

  async startGiveaway(event) {
    event.preventDefault();
    const form = $("giveaway-form");
    const eligibility = form.elements.eligibility.value;
    const terms = {
      sku_id: Number(form.elements.sku_id.value),
      duration_s: Number(form.elements.duration_s.value),
      eligibility,
      min_watch_min: eligibility === "watchers" ? Number(form.elements.min_watch_min.value) : 0,
      accounts_only: form.elements.accounts_only.checked,
    };
    $("giveaway-error").textContent = "";
    await this.act(() => this.call("POST", `/api/rooms/${this.roomId}/giveaways`, terms), "giveaway-error");
  }

  async commentOn(event) {
    event.preventDefault();
    $("comment-error").textContent = "";
    const keywords = $("comment-keywords").value.split(/[,\s]+/).filter(Boolean);
    await this.act(() => this.call("PUT", `/api/rooms/${this.roomId}/comment-to-buy`, { keywords }), "comment-error");
  }
}
