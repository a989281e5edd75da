// Paying for a hold, shared by the room's deal checkout and the cart's: the shipping address
// (kept in this browser for next time; a signed-in account's default saved address first, and
// saved to the account when asked), the form's values, the payment call with its
// Idempotency-Key, and the order number once the pipeline has written the order.

import { api, ApiError, guestToken, randomId } from "./common.js";
import { ADDRESS_FIELDS, addAddress, listAddresses, sameAddress, signedIn } from "./addresses.js";

const ADDRESS_KEY = "livecart.address";
const REQUIRED = ["name", "line1", "city", "postal_code", "card"];

export function fillAddress(form) {
  const saved = JSON.parse(localStorage.getItem(ADDRESS_KEY) || "{}");
  for (const [name, value] of Object.entries(saved)) {
    const input = form.elements[name];
    if (input && !input.value) input.value = value;
  }
  delete form.dataset.typed;
  if (!form.dataset.watched) {
    form.dataset.watched = "1";
    form.addEventListener("input", () => (form.dataset.typed = "1"));
  }
  const offer = form.querySelector(".save-address");
  if (offer) offer.hidden = !signedIn();
  if (signedIn()) fillFromAccount(form);
}

// The account's default address wins over the one this browser remembers (it may be another
// person's on a shared device), unless the person has typed since the form opened.
async function fillFromAccount(form) {
  const opened = String(Number(form.dataset.opened || 0) + 1);
  form.dataset.opened = opened;
  let addresses;
  try {
    addresses = await listAddresses();
  } catch {
    return; // the remembered address stays: checkout works without the account's list
  }
  if (form.dataset.opened !== opened) return; // opened again since: that call fills it
  form.savedAddresses = addresses;
  const chosen = addresses.find((a) => a.is_default);
  if (!chosen || form.dataset.typed) return;
  for (const field of ADDRESS_FIELDS) form.elements[field].value = chosen[field];
}

// After a payment: keep its address on the account when the person ticked "save", unless the
// account has it already. Never an error to show: the order is paid, only a shortcut is lost
// (ten addresses kept already, or the network).
export async function keepAddress(form, shipping) {
  const box = form.elements.save_address;
  if (!box?.checked || !signedIn()) return;
  box.checked = false;
  if ((form.savedAddresses || []).some((a) => sameAddress(a, shipping))) return;
  try {
    form.savedAddresses = [...(form.savedAddresses || []), await addAddress(shipping)];
  } catch {
    // see above
  }
}

// The form's payment body, or null (and the missing fields marked) when one is empty.
export function readForm(form) {
  let ok = true;
  const value = (name) => form.elements[name].value.trim();
  for (const name of REQUIRED) {
    const input = form.elements[name];
    const missing = !value(name);
    input.setAttribute("aria-invalid", missing ? "true" : "false");
    ok &&= !missing;
  }
  if (!ok) return null;
  const shipping = {
    name: value("name"),
    line1: value("line1"),
    line2: value("line2"),
    city: value("city"),
    postal_code: value("postal_code"),
    country: value("country"),
  };
  return { shipping, card: value("card").replace(/[\s-]/g, "") };
}

// Pay for ``hold`` with ``body`` (``hold.ids``: several holds, a cart across shops, paid by
// one request that answers an order per hold). One key per attempt, kept only to retry the same attempt
// after a network failure: the server answers a replay without charging twice, and a new card
// is a new attempt. Resolves to the receipt; rejects with the ApiError.
export async function payHold(hold, body) {
  localStorage.setItem(ADDRESS_KEY, JSON.stringify(body.shipping));
  const sameBody = JSON.stringify(body) === hold.payBody;
  const key = hold.payKey && sameBody ? hold.payKey : `pay-${hold.id}-${randomId()}`;
  hold.payKey = key;
  hold.payBody = JSON.stringify(body);
  const token = await guestToken();
  const headers = { Authorization: `Bearer ${token}`, "Idempotency-Key": key };
  try {
    if (hold.ids && hold.ids.length > 1) {
      const paid = await api("POST", "/api/cart/pay", { body: { ...body, holds: hold.ids }, headers });
      return paid.orders;
    }
    const paid = await api("POST", `/api/holds/${hold.id}/checkout`, { body, headers });
    return paid.order;
  } catch (error) {
    if (error instanceof ApiError && error.code !== "network") hold.payKey = null; // answered
    throw error;
  }
}

// The order the pipeline wrote for ``holdId`` (moments after payment), handed to ``found``;
// asks again with a growing pause while ``wanted()`` says the answer is still wanted.
export async function waitForOrder(holdId, found, wanted, tries = 0) {
  if (!wanted()) return;
  const token = await guestToken();
  try {
    const { orders } = await api("GET", "/api/orders", { headers: { Authorization: `Bearer ${token}` } });
    const order = orders.find((o) => o.hold_id === holdId);
    if (!wanted()) return;
    if (order) {
      found(order);
      return;
    }
  } catch {
    // try again below
  }
  if (tries < 120) setTimeout(() => waitForOrder(holdId, found, wanted, tries + 1), Math.min(2000, 250 + tries * 100));
}
