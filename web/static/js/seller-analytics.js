// The seller center's analytics (decision 0044): each ended live's minutes, drawn when its
// "Charts" row is opened, and each shop's last 30 days. Reads the JSON API with the sign-in
// cookie.
import { api } from "./common.js";
import { lineChart } from "./analytics.js";

// The series' names in the page's language (web/i18n, rendered into the page).
const LABELS = JSON.parse(document.getElementById("analytics-labels")?.textContent || "{}");
const pick = (names) => Object.fromEntries(names.map((name) => [name, LABELS[name] || name]));
const MINUTE_LABELS = pick(["viewers", "unique_viewers", "likes", "chat", "clicks", "carts", "orders"]);
const DAY_LABELS = pick(["unique_viewers", "clicks", "carts", "orders"]);

// Counts and shares as the page's language writes them (as Babel does on the server: one
// decimal for a share).
const lang = document.documentElement.lang || "en";
const count = new Intl.NumberFormat(lang).format;
const percent = new Intl.NumberFormat(lang, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format;
const say = (name, values) =>
  (LABELS[name] || name).replace(/\{(\w+)\}/g, (whole, key) => (key in values ? values[key] : whole));

async function drawRoom(details) {
  if (details.dataset.drawn) return;
  details.dataset.drawn = "1";
  try {
    const { analytics } = await api("GET", `/api/rooms/${details.dataset.room}/analytics`);
    const t = analytics.totals;
    details.querySelector(".room-totals").textContent = [
      say("totals_viewers", { count: count(t.unique_viewers), peak: count(t.peak_viewers) }),
      say("totals_impressions", { count: count(t.impressions) }),
      say("totals_clicks", { count: count(t.clicks), rate: percent(t.click_through) }),
      say("totals_carts", { count: count(t.carts) }),
      say("totals_orders", { count: count(t.orders), rate: percent(t.conversion) }),
    ].join(" · ");
    lineChart(details.querySelector(".analytics-chart"), analytics.minutes, "minute_ms", MINUTE_LABELS);
  } catch {
    delete details.dataset.drawn; // opening it again tries again
  }
}

for (const details of document.querySelectorAll("details.room-charts")) {
  details.addEventListener("toggle", () => details.open && drawRoom(details));
}

for (const trend of document.querySelectorAll(".analytics-trend")) {
  api("GET", `/api/shops/${trend.dataset.shop}/analytics/daily?days=30`).then(
    ({ days }) => lineChart(trend.querySelector(".analytics-chart"), days, "day_ms", DAY_LABELS),
    () => {},
  );
}
