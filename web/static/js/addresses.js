// A signed-in account's saved addresses (docs/protocol.md, Accounts): the account page lists,
// adds, deletes and chooses the default; the payment forms are prefilled from the default.

import { api, currentSession } from "./common.js";

export const ADDRESS_FIELDS = ["name", "line1", "line2", "city", "postal_code", "country"];
const MINE = "/api/accounts/me/addresses";

function headers() {
  return { Authorization: `Bearer ${currentSession().token}` };
}

export function signedIn() {
  return Boolean(currentSession()?.account);
}

export async function listAddresses() {
  return (await api("GET", MINE, { headers: headers() })).addresses;
}

export async function addAddress(address, makeDefault = false) {
  const body = { ...address, default: makeDefault };
  return (await api("POST", MINE, { body, headers: headers() })).address;
}

export async function deleteAddress(id) {
  await api("DELETE", `${MINE}/${id}`, { headers: headers() });
}

// Resolves to the addresses, this one the default.
export async function chooseDefault(id) {
  return (await api("POST", `${MINE}/${id}/default`, { headers: headers() })).addresses;
}

export function sameAddress(a, b) {
  return ADDRESS_FIELDS.every((field) => (a[field] || "") === (b[field] || ""));
}
