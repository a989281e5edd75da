// Sign up, sign in, sign out and reset a password (decision 0041). The session this browser
// keeps (common.js) becomes the account's: every page then buys, chats and lists orders as the
// account. Signing up from a guest keeps its holds and cart (the account is that guest from
// then on); signing in brings the guest's orders and cart along. ?next= returns to the page
// that sent the viewer here (a live room). Where the browser and the site's name allow it,
// a passkey signs in instead of the password, and the signed-in account adds and deletes them.

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
  passkey_unknown: "error_passkey_unknown",
  passkey_exists: "error_passkey_exists",
  passkey_sign_count: "error_passkey_sign_count",
  passkey_rejected: "error_passkey_failed",
  passkey_not_verified: "error_passkey_failed",
  passkey_challenge_invalid: "error_passkey_failed",
  // The browser's: the person closed the passkey prompt, or it timed out.
  NotAllowedError: "passkey_cancelled",
};
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
  passkeys.hidden = !window.PublicKeyCredential;
  if (passkeysHere(config)) listPasskeys();
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
