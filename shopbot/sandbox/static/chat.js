// The sandbox's web chat: polls the JSON API under /api; no build step, no dependencies.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { user: null, users: [], shownMessages: "", shownPanel: "", busy: {} };

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(`/api${path}`, options);
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || `HTTP ${answer.status}`);
  return data;
}

function toast(text, error) {
  const box = $("#toast");
  box.textContent = text;
  box.className = error ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, error ? 6000 : 2500);
}

// Run fn at most once at a time under name, reporting failures; polling must not pile up requests.
async function once(name, fn) {
  if (state.busy[name]) return;
  state.busy[name] = true;
  try { await fn(); } catch (error) { toast(error.message, true); } finally { state.busy[name] = false; }
}

function escape(text) {
  const span = document.createElement("span");
  span.textContent = text == null ? "" : String(text);
  return span.innerHTML;
}

// --- users ---------------------------------------------------------------------------------------------

function renderUsers() {
  const list = $("#user-list");
  list.innerHTML = "";
  for (const user of state.users) {
    const item = document.createElement("li");
    item.dataset.userId = user.id;
    item.className = state.user && state.user.id === user.id ? "current" : "";
    item.innerHTML = `<div>${escape(user.first_name)}</div><div class="handle">${user.username ? "@" + escape(user.username) : "no username"} · ${escape(user.language_code)}</div>`;
    item.addEventListener("click", () => pickUser(user));
    list.appendChild(item);
  }
}

function pickUser(user) {
  state.user = user;
  state.shownMessages = "";
  state.shownPanel = "";
  localStorage.setItem("sandbox-user", String(user.id));
  $("#chat-subtitle").textContent = `bot · you are ${user.first_name}${user.username ? " (@" + user.username + ")" : ""}`;
  $("#language").value = user.language_code || "en";
  $("#text").disabled = false;
  $("#send").disabled = false;
  $("#text").focus();
  $("#inviter-name").textContent = user.first_name;
  renderUsers();
  refreshMessages();
  refreshPanel();
}

async function createUser(event) {
  event.preventDefault();
  const form = event.target;
  const body = { first_name: form.first_name.value.trim(), language_code: form.language_code.value };
  if (form.username.value.trim()) body.username = form.username.value.trim();
  const inviter = form.invited.checked ? state.user : null;
  await once("create", async () => {
    const user = await api("POST", inviter ? `/users/${inviter.id}/invitee` : "/users", body);
    if (inviter) toast(`${user.first_name} opened the bot through ${inviter.first_name}'s referral link`);
    state.users.push(user);
    form.reset();
    pickUser(user);
  });
}

async function switchLanguage() {
  if (!state.user) return;
  const user = state.user;
  await once("language", async () => {
    const body = { first_name: user.first_name, language_code: $("#language").value };
    if (user.username) body.username = user.username;
    const changed = await api("PUT", `/users/${user.id}`, body);
    state.users = state.users.map((u) => (u.id === changed.id ? changed : u));
    state.user = changed;
    renderUsers();
    toast(`Language: ${changed.language_code}. Send /start to see it.`);
  });
}

// --- the chat ------------------------------------------------------------------------------------------

function renderMessages(messages) {
  const box = $("#messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.innerHTML = "";
  if (!messages.length) box.innerHTML = '<div class="empty">Send /start to begin.</div>';
  for (const message of messages) {
    const item = document.createElement("div");
    item.className = `msg ${message.from}`;
    item.dataset.messageId = message.id;
    const time = new Date(message.date * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    item.innerHTML = `<div class="bubble">${message.html}<div class="meta">${message.edited ? "edited " : ""}${time}</div></div>`;
    if (message.keyboard.length) {
      const keyboard = document.createElement("div");
      keyboard.className = "keyboard";
      for (const row of message.keyboard) {
        const line = document.createElement("div");
        line.className = "kb-row";
        for (const button of row) line.appendChild(renderButton(message.id, button));
        keyboard.appendChild(line);
      }
      item.appendChild(keyboard);
    }
    box.appendChild(item);
  }
  if (atBottom || !state.shownMessages) box.scrollTop = box.scrollHeight;
}

function renderButton(messageId, button) {
  if (button.url) {
    const link = document.createElement("a");
    link.className = "kb";
    link.href = button.url;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = button.text;
    return link;
  }
  const press = document.createElement("button");
  press.className = "kb";
  press.type = "button";
  press.textContent = button.text;
  press.disabled = button.callback_data == null;
  press.addEventListener("click", () => once("press", async () => {
    await api("POST", `/chats/${state.user.id}/press`, { message_id: messageId, callback_data: button.callback_data });
    refreshMessages();
  }));
  return press;
}

async function refreshMessages() {
  if (!state.user) return;
  const user = state.user;
  await once("messages", async () => {
    const data = await api("GET", `/chats/${user.id}/messages`);
    const shown = JSON.stringify(data.messages);
    if (state.user !== user || shown === state.shownMessages) return;
    renderMessages(data.messages);
    state.shownMessages = shown;
  });
}

async function sendText(text) {
  if (!state.user || !text) return;
  await once("send", async () => {
    await api("POST", `/chats/${state.user.id}/messages`, { text });
    refreshMessages();
  });
}

// --- the side panel and the fault switches -------------------------------------------------------------

function renderPanel(data) {
  const balance = data.balance;
  $("#balance").innerHTML = balance
    ? `${escape(balance.available)} <small>held ${escape(balance.held)}</small>`
    : "— <small>the shop has not met this user yet</small>";
  const orders = data.orders.map((o) => `<tr><td><span class="status ${escape(o.status)}">${escape(o.status)}</span></td>
    <td>${escape(o.amount)} ${escape(o.product)} → @${escape(o.username)}</td><td>${escape(o.cost)} TON</td></tr>`);
  $("#orders").innerHTML = `<tbody>${orders.join("") || '<tr><td class="none">none yet</td></tr>'}</tbody>`;
  const payments = data.payments.map((p) => `<tr><td><span class="status ${escape(p.outcome)}">${escape(p.outcome)}</span></td>
    <td>${escape(p.ton)} TON</td><td title="${escape(p.transaction_hash)}">${escape(p.order_ids.length)} order(s)</td></tr>`);
  $("#payments").innerHTML = `<tbody>${payments.join("") || '<tr><td class="none">none yet</td></tr>'}</tbody>`;
  const switches = data.switches;
  $("#armed").innerHTML = switches.armed.map((a) => `<li>${escape(a)}</li>`).join("") || "<li>nothing</li>";
  const premium = Object.entries(switches.fragment_premium_ton).map(([m, ton]) => `${escape(m)} m ${escape(ton)}`);
  $("#prices-now").innerHTML = `Fragment: ${escape(switches.fragment_ton_per_star)} TON per star; Premium ${premium.join(", ")} TON.
    Heleket: ${switches.heleket_ton_usd == null ? "<b>no TON rate</b>" : `1 TON = ${escape(switches.heleket_ton_usd)} USD`}.`;
  state.switches = switches;
  if (!state.pricesShown) {  // the inputs start at what the emulators ask now
    state.pricesShown = true;
    $("#fragment-star-cost").ton.value = switches.fragment_ton_per_star;
    $("#fragment-premium-cost").ton.value = switches.fragment_premium_ton[$("#fragment-premium-cost").months.value];
    if (switches.heleket_ton_usd != null) $("#heleket-ton-rate").usd.value = switches.heleket_ton_usd;
  }
  $("#webhooks-twice").checked = switches.heleket_duplicate_webhooks;
  $("#heleket-429").checked = switches.heleket_rate_limited;
}

async function refreshPanel() {
  await once("panel", async () => {
    const query = state.user ? `?user_id=${state.user.id}` : "";
    const data = await api("GET", `/panel${query}`);
    const shown = JSON.stringify(data);
    if (shown === state.shownPanel) return;
    renderPanel(data);
    state.shownPanel = shown;
  });
}

async function flip(body, said) {
  await once("fault", async () => {
    await api("POST", "/faults", body);
    toast(said);
    state.shownPanel = "";
    refreshPanel();
  });
}

function setUpFaults(setup) {
  for (const select of document.querySelectorAll(".endpoints")) {
    select.innerHTML = setup.fragment_endpoints.map((e) => `<option>${escape(e)}</option>`).join("");
    select.value = "create_order";
  }
  $("#codes").innerHTML = setup.fragment_codes.map((c) => `<option>${escape(c)}</option>`).join("");
  $("#codes").value = "USER_NOT_FOUND";
  $("#unknown-answers").innerHTML = setup.fragment_unknown_user_answers
    .map((a) => `<option>${escape(a)}</option>`).join("");
  $("#unknown-username").textContent = `@${setup.unknown_username}`;
  $("#fragment-fail").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const resign = form.resign.checked && form.code.value === "TRANSFER_NOT_SENT";
    flip({ kind: "fragment_fail", endpoint: form.endpoint.value, code: form.code.value, resign },
      `Fragment ${form.endpoint.value} fails next with ${form.code.value}${resign ? " (sign again)" : ""}`);
  });
  $("#fragment-drop").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    flip({ kind: "fragment_drop", endpoint: form.endpoint.value, after_processing: form.after_processing.checked },
      form.after_processing.checked ? "The next answer will be lost after it took effect"
        : "Next connection will be dropped");
  });
  $("#fragment-lands-late").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = Number(event.target.seconds.value || 0);
    flip({ kind: "fragment_lands_late", seconds }, `The next payment lands ${seconds} s late`);
  });
  $("#fragment-slow-lookups").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = Number(event.target.seconds.value || 0);
    const times = Number(event.target.times.value || 1);
    flip({ kind: "fragment_slow_lookups", seconds, times }, `The next ${times} lookups answer ${seconds} s late`);
  });
  $("#fragment-unknown-users").addEventListener("submit", (event) => {
    event.preventDefault();
    const answer = event.target.answer.value;
    flip({ kind: "fragment_unknown_users", answer }, `A name nobody has is answered ${answer}`);
  });
  $("#fragment-wrong-order").addEventListener("submit", (event) => {
    event.preventDefault();
    flip({ kind: "fragment_wrong_order" }, "The next order will be answered with an old one");
  });
  $("#heleket-429").addEventListener("change", (event) => {
    flip({ kind: "heleket_rate_limit", on: event.target.checked },
      event.target.checked ? "Heleket answers 429" : "Heleket answers normally");
  });
  $("#heleket-info-latency").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = Number(event.target.seconds.value || 0);
    flip({ kind: "heleket_info_latency", seconds }, `Heleket's payment/info answers ${seconds} s late`);
  });
  $("#fragment-latency").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = Number(event.target.seconds.value || 0);
    flip({ kind: "fragment_latency", seconds }, `Fragment answers ${seconds} s late`);
  });
  $("#fragment-star-cost").addEventListener("submit", (event) => {
    event.preventDefault();
    const ton = event.target.ton.value.trim();
    flip({ kind: "fragment_ton_cost", ton }, `Fragment now asks ${ton} TON per star`);
  });
  $("#fragment-premium-cost").addEventListener("submit", (event) => {
    event.preventDefault();
    const ton = event.target.ton.value.trim();
    const months = Number(event.target.months.value);
    flip({ kind: "fragment_ton_cost", ton, months }, `Fragment now asks ${ton} TON for ${months} months of Premium`);
  });
  $("#fragment-premium-cost").months.addEventListener("change", (event) => {
    const asked = state.switches && state.switches.fragment_premium_ton[event.target.value];
    if (asked) event.target.form.ton.value = asked;
  });
  $("#heleket-ton-rate").addEventListener("submit", (event) => {
    event.preventDefault();
    const usd = event.target.usd.value.trim();
    flip({ kind: "heleket_ton_rate", usd }, `Heleket now says 1 TON = ${usd} USD`);
  });
  $("#heleket-no-rate").addEventListener("click", () => {
    flip({ kind: "heleket_ton_rate", usd: null }, "Heleket now gives no TON rate");
  });
  $("#webhooks-fail").addEventListener("submit", (event) => {
    event.preventDefault();
    const count = Number(event.target.count.value || 0);
    flip({ kind: "heleket_fail_webhooks", count }, `The next ${count} webhook attempts fail`);
  });
  $("#webhooks-twice").addEventListener("change", (event) => {
    flip({ kind: "heleket_duplicate_webhooks", on: event.target.checked },
      event.target.checked ? "Webhooks arrive twice" : "Webhooks arrive once");
  });
}

// --- the Heleket payment page --------------------------------------------------------------------------

async function startPayPage(uuid) {
  $("#pay").hidden = false;
  document.title = "Heleket — sandbox payment";
  const show = (invoice) => {
    $("#pay-amount").textContent = `${invoice.amount} ${invoice.currency}`;
    $("#pay-order").textContent = invoice.order_id;
    $("#pay-coin").textContent = invoice.payer_currency
      ? `${invoice.payer_amount} ${invoice.payer_currency} (${invoice.network})` : "chosen when you pay";
    $("#pay-address").textContent = invoice.address || "—";
    $("#pay-expires").textContent = new Date(invoice.expired_at * 1000).toLocaleString();
    $("#pay-status").textContent = invoice.status;
    for (const button of document.querySelectorAll(".pay-actions button")) button.disabled = invoice.is_final;
  };
  const load = () => once("invoice", async () => show(await api("GET", `/invoices/${uuid}`)));
  for (const button of document.querySelectorAll(".pay-actions button")) {
    button.addEventListener("click", () => once("pay", async () => {
      show(await api("POST", `/invoices/${uuid}/${button.dataset.action}`));
      toast(`Done: ${button.textContent}`);
    }));
  }
  await load();
  setInterval(load, 2000);
}

// --- start ---------------------------------------------------------------------------------------------

async function startChat() {
  $("#app").hidden = false;
  const setup = await api("GET", "/setup");
  $("#bot-name").textContent = `${setup.bot.name} (@${setup.bot.username})`;
  state.users = setup.users;
  setUpFaults(setup);
  $("#promo-codes").innerHTML = Object.entries(setup.promo_codes)
    .map(([code, what]) => `<code>${escape(code)}</code> ${escape(what)}`).join("; ");
  renderUsers();
  const remembered = state.users.find((u) => String(u.id) === localStorage.getItem("sandbox-user"));
  if (remembered) pickUser(remembered);
  $("#new-user").addEventListener("submit", createUser);
  $("#language").addEventListener("change", switchLanguage);
  $("#composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#text").value.trim();
    $("#text").value = "";
    sendText(text);
  });
  $("#messages").addEventListener("click", (event) => {
    const command = event.target.closest("a.command");
    if (!command) return;
    event.preventDefault();
    sendText(command.dataset.command);
  });
  setInterval(refreshMessages, 700);
  setInterval(refreshPanel, 1000);
  refreshPanel();
}

const paying = location.pathname.match(/^\/pay\/([0-9a-f-]+)$/);
(paying ? startPayPage(paying[1]) : startChat()).catch((error) => toast(error.message, true));
