// Shared by every page: page config, strings, money, the guest session, JSON calls.

export const config = (() => {
  const node = document.getElementById("page-config");
  return node ? JSON.parse(node.textContent) : {};
})();

export function t(key, values = {}) {
  const text = (config.strings || {})[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// What a page says for an API refusal (decision 0047, as web/seller_pages.py page_message):
// its code's words when the page is not English and the catalog has them, else the API's own.
export function refusal(error) {
  const key = `sc_err_${error.code}`;
  if (document.documentElement.lang !== "en" && key in (config.strings || {})) return t(key);
  return error.message || error.code;
}

// Babel's currency rules for the page's language, from the server (web/l10n.py money_format):
// money() applies them the way Babel's format_currency does, so a price drawn here reads
// exactly like the same price drawn by a template.
const moneyFormat = (() => {
  const node = document.getElementById("money-format");
  return node ? JSON.parse(node.textContent) : null;
})();

// Minor units (an integer, decision 0004) as a price: money(1990, "USD") is "$19.90" in
// English, "19,90 $US" in French.
export function money(amount, currency) {
  const digits = minorDigits(currency);
  if (!moneyFormat) return `${(amount / 10 ** digits).toFixed(digits)} ${currency}`;
  const f = moneyFormat;
  const units = String(Math.abs(Math.round(amount))).padStart(digits + 1, "0");
  const whole = units.slice(0, units.length - digits).padStart(f.min_int, "0");
  const fraction = digits ? f.decimal + units.slice(units.length - digits) : "";
  const [prefix, suffix] = amount < 0 ? f.negative : f.positive;
  const symbol = isolated(f.symbols[currency] ?? currency, f.isolate);
  const affix = (text) => text.replaceAll("¤¤", currency).replaceAll("¤", symbol);
  return affix(prefix) + groupDigits(whole, f.grouping, f.group) + fraction + affix(suffix);
}

// On a right-to-left page a symbol with Latin letters is kept left to right ("US$", not "$US"),
// as web/l10n.py isolated() does.
function isolated(symbol, isolate) {
  return isolate && /[A-Za-z]/.test(symbol) ? isolate[0] + symbol + isolate[1] : symbol;
}

// Babel's grouping: the primary size from the right, then the secondary size for the rest.
function groupDigits(digits, [primary, secondary], separator) {
  let rest = digits;
  let grouped = "";
  let size = primary;
  while (rest.length > size) {
    grouped = separator + rest.slice(-size) + grouped;
    rest = rest.slice(0, -size);
    size = secondary;
  }
  return rest + grouped;
}

// How many of an amount's last digits are the fraction: ISO 4217's, from the server's rules
// (0 for yen, 3 for dinars, else 2).
export function minorDigits(currency) {
  return moneyFormat?.digits[currency] ?? 2;
}

// "39" or "39.90" in minor units of the currency; NaN when it is not an amount.
export function minorUnits(text, currency) {
  const digits = minorDigits(currency);
  const match = /^(\d{1,10})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (!match || (match[2] || "").length > digits) return NaN;
  return Number(match[1]) * 10 ** digits + Number((match[2] || "").padEnd(digits, "0") || 0);
}

// A random id (crypto.randomUUID exists only on HTTPS and localhost; a phone on the LAN
// reaches a demo over plain http).
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function clockText(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  return `${minutes}:${String(total % 60).padStart(2, "0")}`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

// This browser's session: a guest's ({token, buyer_id}) or, once signed in, an account's
// ({token, buyer_id, account}); every page sends its token, so an account buys as one buyer on
// all its devices (decision 0041).
const GUEST_KEY = "livecart.guest";

export function currentSession() {
  const saved = localStorage.getItem(GUEST_KEY);
  return saved ? JSON.parse(saved) : null;
}

export function keepSession(session) {
  localStorage.setItem(GUEST_KEY, JSON.stringify(session));
}

// Signing out: the next page that needs a session starts a new guest one.
export function forgetSession() {
  localStorage.removeItem(GUEST_KEY);
}

// Whether this browser has a guest session already (asking for one makes it).
export function hasGuest() {
  return localStorage.getItem(GUEST_KEY) !== null;
}

// A viewer's identity: a guest session kept in this browser, made on first need. Newcomers
// crowding one address (a venue's Wi-Fi) may be told to wait (429): wait as told, a few times,
// with jitter so the crowd does not come back all at once.
export async function guestToken({ renew = false } = {}) {
  if (!renew) {
    const saved = localStorage.getItem(GUEST_KEY);
    if (saved) return JSON.parse(saved).token;
  }
  let response = await fetch("/api/session", { method: "POST" });
  for (let retries = 5; response.status === 429 && retries > 0; retries--) {
    const wait = Math.min(Number(response.headers.get("Retry-After")) || 1, 30);
    await new Promise((resolve) => setTimeout(resolve, wait * (1 + Math.random()) * 1000));
    response = await fetch("/api/session", { method: "POST" });
  }
  if (!response.ok) throw new Error(`session ${response.status}`);
  const session = await response.json();
  localStorage.setItem(GUEST_KEY, JSON.stringify(session));
  return session.token;
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details || {};
  }
}

// A JSON call. Errors come back as ApiError with the server's code; a network failure as
// ApiError("network").
export async function api(method, path, { body, headers = {}, keepalive = false } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      keepalive,
    });
  } catch {
    throw new ApiError(0, { code: "network", message: "network" });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || { code: "http_" + response.status, message: "" });
  return data;
}

// A form posted to the server is sent once: a second click would act twice.
for (const form of document.querySelectorAll("form[method=post]")) {
  form.addEventListener("submit", () => {
    setTimeout(() => form.querySelectorAll("button").forEach((b) => (b.disabled = true)));
  });
}

// The language switcher changes page as soon as a language is picked.
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}

// Country lists come sorted accent-blind from the server (Python has no CLDR collation);
// the browser's collator knows each language's order (pinyin in Chinese, gojūon in Japanese).
for (const select of document.querySelectorAll("select[data-collate]")) {
  const collator = new Intl.Collator(document.documentElement.lang);
  const options = [...select.options].sort((a, b) => collator.compare(a.text, b.text));
  const chosen = select.value;
  select.replaceChildren(...options);
  select.value = chosen;
}
