// A storefront product page: the product sheet (options, quantity, Add to cart, Buy now) and
// the cart, as in a live room's bag (web/static/js/shop.js).

import { config } from "./common.js";
import { Shop } from "./shop.js";

const $ = (id) => document.getElementById(id);
const shop = new Shop({
  onChange: () => ($("cart-count").textContent = shop.units() ? String(shop.units()) : ""),
});
$("choose")?.addEventListener("click", () => shop.openProduct(config.card));
$("cart-button").addEventListener("click", () => shop.openCart());
