// Sign up, sign in, sign out and reset a password (decision 0041). The session this browser
// keeps (common.js) becomes the account's: every page then buys, chats and lists orders as the
// account. Signing up from a guest keeps its holds and cart (the account is that guest from
// then on); signing in brings the guest's orders and cart along. ?next= returns to the page
// that sent the viewer here (a live room).

import { ApiError, api, currentSession, forgetSession, guestToken, hasGuest, keepSession, t } from "./common.js";

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
};

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
}

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function refused(form, error) {
  const key = error instanceof ApiError ? REFUSALS[error.code] : null;
  form.querySelector(".form-error").textContent = key ? t(key) : error.message || t("error_generic");
}

// The guest token to bring along, if this browser has one (none is needed).
async function guestHeaders() {
  if (!hasGuest() || currentSession()?.account) return {};
  return { Authorization: `Bearer ${await guestToken()}` };
}

function submit(form, send) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelector(".form-error").textContent = "";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await send(fields(form));
    } catch (error) {
      refused(form, error);
    } finally {
      button.disabled = false;
    }
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
document.getElementById("forgot").addEventListener("click", () => show(forms.askReset));
document.getElementById("sign-out").addEventListener("click", () => {
  forgetSession();
  show(forms.signIn, forms.signUp);
});

if (resetCode) show(forms.reset);
else if (currentSession()?.account) showSignedIn();
else show(forms.signIn, forms.signUp);
