# The account flows: balance, top-up, history, language, help.
# Variables keep to the names every text is checked with (tests/bot/test_locales.py): $amount and
# $balance are money already formatted ("15.00 USD"), $count a number, $id an invoice or order
# number, $what a description already formatted, $name the support contact.

## Balance

balance-available = 💰 <b>Your balance:</b> { $balance }
balance-held = ⏳ Reserved for orders in progress: { $amount }
balance-empty-hint = Top up with crypto to buy Telegram Stars and Premium.

## Top-up

recharge-choose = ➕ <b>Top up your balance</b>
    Choose an amount, or enter your own. You pay in crypto on the Heleket page.
recharge-minimum = Minimum: { $amount }
recharge-maximum = Maximum: { $amount }
recharge-other = ✏️ Other amount
recharge-ask-amount = ✏️ Send the amount as a number, for example <code>15</code> or <code>12.50</code>.
recharge-not-a-number = 🤔 That is not an amount. Send a number such as <code>15</code> or <code>12.50</code>, or /cancel.
recharge-too-precise = 🤔 Amounts go to the cent: at most two digits after the point. Try again, or /cancel.
recharge-too-small = The smallest top-up is { $amount }. Send a larger amount, or /cancel.
recharge-too-large = The largest top-up is { $amount }. Send a smaller amount, or /cancel.
recharge-not-configured = Top-ups are not available in this shop yet. Please try again later.
recharge-unavailable = The payment service is not answering right now. Please try again in a few minutes.
# $count: how many unpaid top-ups the user has open (the most the shop allows).
recharge-too-many-open = ✋ You already have { $count ->
        [one] { $count } unpaid top-up
       *[other] { $count } unpaid top-ups
    } open. Pay one of them with its button below, or wait until one expires, then top up again.
# $what: the clock time (UTC) the first open top-up expires.
recharge-first-expiry = ⏰ The first one expires at { $what } UTC.
recharge-pay-open = 💳 Pay #{ $id }: { $amount }
recharge-invoice = 🧾 <b>Top-up #{ $id }</b>: <b>{ $amount }</b>
    Press “Pay” and pay in crypto on the Heleket page. The money is credited to your balance automatically, and I will tell you when it arrives.
# $count: minutes left; $what: the clock time (UTC) the link stops working.
recharge-expires-minutes = ⏰ The link is valid for { $count ->
        [one] { $count } minute
       *[other] { $count } minutes
    }, until { $what } UTC.
recharge-expires-hours = ⏰ The link is valid for { $count ->
        [one] { $count } hour
       *[other] { $count } hours
    }, until { $what } UTC.
recharge-pay = 💳 Pay
recharge-check = 🔄 Check payment

## Check payment (the answers are short: Telegram shows at most 200 characters)

topup-title = 🧾 <b>Top-up #{ $id }</b>
topup-not-found = This invoice was not found. Open /recharge to top up.
topup-status-paid = ✅ Paid: the money is on your balance.
topup-status-waiting = ⏳ Not paid yet. Pay with the “Pay” button; I will tell you as soon as the money arrives.
topup-status-confirming = ⏳ Your payment is on its way and waiting for network confirmations. It is credited automatically.
topup-status-partly-paid = ⚠️ Less than the invoice amount has arrived so far. Pay the rest on the Heleket page.
topup-status-underpaid = ⚠️ Less than the invoice amount was paid. Support will sort it out: /paysupport
topup-status-expired = ⌛ This invoice has expired or was cancelled. Nothing was charged; start a new top-up.
topup-status-failed = ❌ This payment did not go through. Start a new top-up, or ask /paysupport.
topup-status-refunded = ↩️ Heleket is refunding or has refunded this payment. Questions: /paysupport
topup-status-locked = ⚠️ Heleket is holding this payment for a compliance check. Questions: /paysupport

## History

history-title = 📜 <b>Your payments and orders</b>
history-empty = Nothing here yet. Your top-ups and orders will appear here.
history-times = <i>Times are in UTC.</i>
history-prev = « Newer
history-next = Older »
history-topup = ➕ Top-up { $amount }
history-bonus = 🎁 Bonus { $amount }
history-refund = ↩️ Refund { $amount }
history-adjustment = ✏️ Correction by the shop { $amount }
history-purchase = 🛒 Payment { $amount }
# $what: what was bought ("50 Telegram Stars for @durov"); $price: what it costs.
history-order-pending = ⏳ Order #{ $id }: { $what } — { $price }, in progress
history-order-delivered = ✅ Order #{ $id }: { $what } — { $price }, delivered
history-order-refunded = ↩️ Order #{ $id }: { $what } — { $price }, refunded

## Language

language-choose = 🌐 Choose your language:
language-changed = ✅ Done: I will speak English from now on.

## Help

help-text = ❓ <b>How this shop works</b>
    1. Top up your balance with crypto: /recharge. It is credited automatically once the payment is confirmed.
    2. Buy Telegram Stars (/buy_stars) or gift Telegram Premium (/premium), for yourself or for any @username.
    3. The order is delivered through Fragment, and I tell you when it is done. An order that cannot be delivered is refunded to your balance.

    <b>Commands</b>
    /start — main menu
    /balance — your balance
    /recharge — top up with crypto
    /buy_stars — buy Telegram Stars
    /premium — gift Telegram Premium
    /history — your payments and orders
    /language — change the language
    /paysupport — help with a payment
help-support = 🛟 Support: { $name }
help-no-support = 🛟 This shop has not published a support contact yet. Your money is safe: every top-up and order is recorded, and /history shows them.
paysupport-text = 💳 <b>Payment support</b>
    • A top-up is credited automatically once the network confirms it. If it has not arrived, press “Check payment” under its invoice.
    • An order that cannot be delivered is refunded to your balance automatically.
    • /history shows every top-up and order with its number; please mention the number when you write to us.
