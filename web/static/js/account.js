// Sign up, sign in, sign out and reset a password (decision 0041). The session this browser
// keeps (common.js) becomes the account's: every page then buys, chats and lists orders as the
// account. Signing up from a guest keeps its holds and cart (the account is that guest from
// then on); signing in brings the guest's orders and cart along. ?next= returns to the page
// that sent the viewer here (a live room). Signed in, the page keeps the account's shipping
// addresses: listed default first, added, deleted, one chosen as the default checkout fills in.
// Where the browser and the site's name allow it, a passkey signs in instead of the password,
// and the signed-in account adds and deletes them.

import { ADDRESS_FIELDS, addAddress, chooseDefault, deleteAddress, listAddresses } from "./addresses.js";
import { ApiError, api, config, currentSession, el, forgetSession, guestToken, hasGuest, keepSession, t } from "./common.js";
import { createPasskey, getPasskey, passkeysHere } from "./passkeys.js";

const forms = {
  signIn: document.getElementById("sign-in"),
  signUp: document.getElementById("sign-up"),
  askReset: document.getElementById("ask-reset"),
  reset: document.getElementById("reset"),
};
const signedIn = document.getElementById("signed-in");
const next = new URLSearchParams(location.search).get("next");
const back = next && next.startsWith("/") && !next.startsWith("//") ? next : null;
// Refusals a person can act on, in their language; any other shows the server's message.
const REFUSALS = {
  weak_password: "error_weak_password",
  wrong_password: "error_wrong_password",
  email_taken: "error_email_taken",
  invalid_email: "error_invalid_email",
  reset_invalid: "error_reset_invalid",
  rate_limited: "error_rate_limited",
  too_many_addresses: "error_too_many_addresses",
  passkey_unknown: "error_passkey_unknown",
  passkey_exists: "error_passkey_exists",
  passkey_sign_count: "error_passkey_sign_count",
  passkey_rejected: "error_passkey_failed",
  passkey_not_verified: "error_passkey_failed",
  passkey_challenge_invalid: "error_passkey_failed",
  // The browser's: the person closed the passkey prompt, or it timed out.
  NotAllowedError: "passkey_cancelled",
};
const addressForm = document.getElementById("add-address");
const addressList = document.getElementById("address-list");
const addressSection = document.getElementById("addresses");
const REQUIRED_FIELDS = ["name", "line1", "city", "postal_code"];
const passkeys = document.getElementById("passkeys");

function show(...visible) {
  for (const form of Object.values(forms)) form.hidden = !visible.includes(form);
  signedIn.hidden = !visible.includes(signedIn);
  document.getElementById("back").hidden = !back;
  if (back) document.getElementById("back-link").href = back;
}

function showSignedIn() {
  const session = currentSession();
  document.getElementById("signed-in-as").textContent = t("signed_in_as", {
    name: session.account.display_name,
    email: session.account.email,
  });
  show(signedIn);
  showAddresses();
  passkeys.hidden = !window.PublicKeyCredential;
  if (passkeysHere(config)) listPasskeys();
}

async function showAddresses() {
  addressSection.querySelector(".form-error").textContent = "";
  try {
    listed(await listAddresses());
  } catch (error) {
    refused(addressSection, error);
  }
}

function listed(addresses) {
  document.getElementById("no-addresses").hidden = addresses.length > 0;
  addressList.replaceChildren(...addresses.map(addressItem));
}

function addressItem(address) {
  const country = addressForm.elements.country.querySelector(`option[value="${address.country}"]`);
  const lines = [address.name, address.line1, address.line2, `${address.postal_code} ${address.city}`];
  lines.push(country ? country.textContent.trim() : address.country);
  const item = el("li", { dataset: { addressId: address.id } }, el("span", { class: "address-text" }, lines.filter(Boolean).join("\n")));
  if (address.is_default) item.append(el("span", { class: "badge" }, t("default_address")));
  else item.append(action(t("make_default"), async () => listed(await chooseDefault(address.id))));
  item.append(action(t("delete_address"), async () => {
    await deleteAddress(address.id);
    await showAddresses();
  }));
  return item;
}

function action(label, run) {
  const button = el("button", { type: "button", class: "secondary" }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    addressSection.querySelector(".form-error").textContent = "";
    try {
      await run();
    } catch (error) {
      refused(addressSection, error);
      button.disabled = false;
    }
  });
  return button;
}

function accountHeaders() {
  return { Authorization: `Bearer ${currentSession().token}` };
}

async function listPasskeys() {
  const { passkeys: found } = await api("GET", "/api/accounts/me/passkeys", { headers: accountHeaders() });
  const list = document.getElementById("passkey-list");
  list.replaceChildren(...found.map(passkeyItem));
  document.getElementById("no-passkeys").hidden = found.length > 0;
}

function passkeyItem(passkey) {
  const remove = el("button", { type: "button", class: "link" }, t("delete_passkey"));
  remove.addEventListener("click", () =>
    acting(passkeys, remove, async () => {
      await api("DELETE", `/api/accounts/me/passkeys/${passkey.id}`, { headers: accountHeaders() });
      await listPasskeys();
    }),
  );
  return el("li", { "data-passkey": passkey.id }, el("span", {}, passkey.name), " ", remove);
}

// Run one action of a form or section: its button off meanwhile, a refusal shown in it.
async function acting(place, button, action) {
  place.querySelector(".form-error").textContent = "";
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    refused(place, error);
  } finally {
    button.disabled = false;
  }
}

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function refused(form, error) {
  const key = error instanceof ApiError ? REFUSALS[error.code] : REFUSALS[error?.name];
  form.querySelector(".form-error").textContent = key ? t(key) : error.message || t("error_generic");
}

// The guest token to bring along, if this browser has one (none is needed).
async function guestHeaders() {
  if (!hasGuest() || currentSession()?.account) return {};
  return { Authorization: `Bearer ${await guestToken()}` };
}

function submit(form, send) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    acting(form, form.querySelector("button[type=submit]"), () => send(fields(form)));
  });
}

function signedInNow(session) {
  keepSession(session);
  if (back) location.assign(back);
  else showSignedIn();
}

submit(forms.signUp, async (body) => {
  signedInNow(await api("POST", "/api/accounts", { body, headers: await guestHeaders() }));
});
submit(forms.signIn, async (body) => {
  signedInNow(await api("POST", "/api/accounts/sign-in", { body, headers: await guestHeaders() }));
});
submit(forms.askReset, async (body) => {
  await api("POST", "/api/accounts/password-reset", { body });
  document.getElementById("reset-sent").hidden = false;
});
const resetCode = location.hash.slice(1);
submit(forms.reset, async (body) => {
  const session = await api("POST", "/api/accounts/password-reset/confirm", {
    body: { reset: resetCode, password: body.password },
  });
  history.replaceState(null, "", location.pathname + location.search);
  signedInNow(session);
});
submit(addressForm, async () => {
  const value = (name) => addressForm.elements[name].value.trim();
  const missing = REQUIRED_FIELDS.filter((name) => !value(name));
  for (const name of REQUIRED_FIELDS) addressForm.elements[name].setAttribute("aria-invalid", String(missing.includes(name)));
  if (missing.length) throw new Error(t("error_required"));
  const address = Object.fromEntries(ADDRESS_FIELDS.map((name) => [name, value(name)]));
  await addAddress(address, addressForm.elements.default.checked);
  for (const name of [...REQUIRED_FIELDS, "line2"]) addressForm.elements[name].value = "";
  addressForm.elements.default.checked = false;
  await showAddresses();
});

if (passkeysHere(config)) {
  const signInButton = document.getElementById("passkey-sign-in");
  signInButton.hidden = false;
  signInButton.addEventListener("click", () =>
    acting(forms.signIn, signInButton, async () => {
      const started = await api("POST", "/api/accounts/passkeys/sign-in/options");
      const credential = await getPasskey(started.options);
      const body = { challenge_id: started.challenge_id, credential };
      signedInNow(await api("POST", "/api/accounts/passkeys/sign-in", { body, headers: await guestHeaders() }));
    }),
  );
  const addButton = document.getElementById("add-passkey");
  addButton.addEventListener("click", () =>
    acting(passkeys, addButton, async () => {
      const started = await api("POST", "/api/accounts/me/passkeys/options", { headers: accountHeaders() });
      const credential = await createPasskey(started.options);
      const name = document.getElementById("passkey-name").value;
      const body = { challenge_id: started.challenge_id, credential, name };
      await api("POST", "/api/accounts/me/passkeys", { body, headers: accountHeaders() });
      document.getElementById("passkey-name").value = "";
      await listPasskeys();
    }),
  );
}
document.getElementById("forgot").addEventListener("click", () => show(forms.askReset));
document.getElementById("sign-out").addEventListener("click", () => {
  forgetSession();
  // The next person at this browser sees nothing of this account's.
  document.getElementById("passkey-list")?.replaceChildren();
  show(forms.signIn, forms.signUp);
});

if (resetCode) show(forms.reset);
else if (currentSession()?.account) showSignedIn();
else show(forms.signIn, forms.signUp);
