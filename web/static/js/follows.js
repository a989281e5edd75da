// Follow buttons, "Remind me" on rooms starting soon, and the notification bell (decision 0045).
// Each needs a signed-in account; a guest sees the sign-up links the templates render instead.

import { api, currentSession, el, t } from "./common.js";

const session = currentSession();
const headers = session?.account ? { Authorization: `Bearer ${session.token}` } : null;

async function mine() {
  return api("GET", "/api/accounts/me/following", { headers });
}

function showFollowing(button, following) {
  button.setAttribute("aria-pressed", String(following));
  button.textContent = following ? t("following_now") : t("follow");
}

function showFollowers(count) {
  const node = document.getElementById("followers");
  node.dataset.count = String(count);
  node.textContent = t("followers_count", { count });
}

async function setUpFollow(widget, state) {
  const sellerId = Number(widget.dataset.seller);
  const button = document.getElementById("follow-button");
  document.getElementById("follow-sign-up").hidden = true;
  button.hidden = false;
  showFollowing(button, state.following.some((f) => f.seller_id === sellerId));
  button.addEventListener("click", async () => {
    const follow = button.getAttribute("aria-pressed") !== "true";
    button.disabled = true;
    try {
      const answer = await api(follow ? "PUT" : "DELETE", `/api/sellers/${sellerId}/follow`, { headers });
      showFollowing(button, answer.following);
      showFollowers(answer.followers);
    } finally {
      button.disabled = false;
    }
  });
}

function setUpReminders(buttons, state) {
  for (const button of buttons) {
    const roomId = Number(button.dataset.room);
    button.closest("li").querySelector(".remind-sign-up")?.remove();
    button.hidden = false;
    const show = (reminded) => {
      button.setAttribute("aria-pressed", String(reminded));
      button.textContent = reminded ? t("reminder_set") : t("remind_me");
    };
    show(state.reminders.includes(roomId));
    button.addEventListener("click", async () => {
      const remind = button.getAttribute("aria-pressed") !== "true";
      button.disabled = true;
      try {
        const answer = await api(remind ? "PUT" : "DELETE", `/api/rooms/${roomId}/reminder`, { headers });
        show(answer.reminded);
      } finally {
        button.disabled = false;
      }
    });
  }
}

function notice(n) {
  const text = t("notice_live", { seller: n.seller_name, title: n.title });
  return el("li", { class: n.read_ms ? "notice" : "notice unread" }, el("a", { href: `/live/${n.room_id}`, dir: "auto" }, text));
}

function showUnread(count) {
  const badge = document.getElementById("bell-count");
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
}

async function setUpBell(bell) {
  const { notifications, unread } = await api("GET", "/api/accounts/me/notifications", { headers });
  document.getElementById("notices").replaceChildren(...notifications.map(notice));
  document.getElementById("no-notices").hidden = notifications.length > 0;
  showUnread(unread);
  bell.hidden = false;
  // Opening the list is reading it: the count goes, the items keep their unread look until the
  // next page.
  bell.addEventListener("toggle", async () => {
    if (bell.open && Number(document.getElementById("bell-count").textContent)) {
      showUnread((await api("POST", "/api/accounts/me/notifications/read", { headers })).unread);
    }
  });
}

async function start() {
  if (!headers) return;
  const widget = document.getElementById("follow");
  const reminders = document.querySelectorAll("button.remind");
  const bell = document.getElementById("bell");
  if (widget || reminders.length) {
    const state = await mine();
    if (widget) await setUpFollow(widget, state);
    setUpReminders(reminders, state);
  }
  if (bell) await setUpBell(bell);
}

start();
