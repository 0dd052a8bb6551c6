# The admin area (shopbot/admin/): only [telegram] admin_ids see these, except maintenance-default and
# refund-reason-admin, which users read. $amount, $balance, $before, $after, $sales, $cost, $revenue are
# money already formatted ("15.00 USD"); $when, $since, $first, $last are UTC times already formatted.

admin-title = 🛠 <b>Admin area</b>
    What do you want to look at?
admin-menu-dashboard = 📊 Dashboard
admin-menu-users = 👤 Users
admin-menu-attention = 🚨 Orders needing attention
admin-menu-broadcast = 📣 Broadcast
admin-menu-maintenance = 🚧 Maintenance
admin-menu-prices = 🏷 Prices
admin-back = « Admin menu
admin-cancel = ✖️ Cancel
admin-cancelled = Cancelled.
admin-stale = That entry is out of date. Open /admin again.
admin-none = none
admin-saved = ✅ Saved.
admin-refresh = 🔄 Refresh

admin-state-created = created
admin-state-queued = queued
admin-state-paying = paying
admin-state-verifying = verifying
admin-state-completed = completed
admin-state-refunded = refunded

## Dashboard

admin-period-today = Today
admin-period-7d = 7 days
admin-period-30d = 30 days
admin-dash-title = 📊 <b>Dashboard: { $period }</b> (since { $since })
admin-dash-topups = 💳 Top-ups: { $count }, { $amount }
admin-dash-orders = 🧾 Orders: { $orders }
admin-dash-sold = ⭐ Stars sold: { $stars }; 🎁 Premium gifts: { $count } ({ $months } months)
admin-dash-revenue = 💰 Sales { $sales } − Fragment cost { $cost } = <b>revenue { $revenue }</b>
admin-dash-margin = 📐 Margin: <b>{ $margin }</b> of sales
admin-dash-margin-none = 📐 Margin: — (no sales)
admin-dash-uncosted = ⚠️ { $count } sales booked without a cost (no TON rate was known): their cost counts as 0 here
admin-dash-users = 👥 Users: { $new } new, { $active } active
admin-dash-wallet = 👛 Wallet: { $ton } TON
admin-cookies-not-needed = 🍪 Cookies: not needed (no-KYC mode)
admin-cookies-none = 🍪 Cookies: ⚠️ none stored — run <code>shopbot fragment login</code>
admin-cookies-lost = 🍪 Cookies: ⚠️ session lost ({ $when }) — run <code>shopbot fragment login</code>
admin-cookies-ok = 🍪 Cookies: ✅ last checked { $when }
admin-dash-circuits = 🔌 Circuits: { $states }
admin-chart = 📈 Chart of daily sales and cost
admin-chart-drawing = Drawing the chart…
admin-chart-title = Sales and Fragment cost per day, last { $count } days
admin-chart-caption = 📈 Sales and Fragment cost per day over the last { $count } days: { $amount } sold, { $cost } cost.
admin-chart-failed = The chart could not be sent. Please try again.

## Users

admin-user-ask = 👤 Send a user's Telegram id or @username.
admin-user-not-found = No user { $typed } has used this shop. Send another id or @username, or /cancel.
admin-user-title = 👤 <b>{ $name }</b> · id <code>{ $id }</code> · { $username }
admin-user-seen = Language { $lang }; first seen { $first }; last seen { $last }
admin-user-balance = 💰 Balance: <b>{ $balance }</b>; reserved for orders: { $amount }
admin-user-movements = <b>Last movements</b>
admin-user-movement = #{ $id } { $type }: { $amount } (reserved { $held }), { $when } { $memo }
admin-user-orders = <b>Last orders</b>
admin-user-order = #{ $id } { $count } { $product } → @{ $recipient }, { $amount }, { $state }, { $when }
admin-adjust = ⚖️ Adjust balance
admin-user-refresh = 🔄 Profile
admin-user-another = 🔎 Another user
admin-adjust-ask-amount = ⚖️ Balance of user { $id }: { $balance }.
    Send the adjustment: <code>+5</code> adds, <code>-2.50</code> takes away (to the cent).
admin-adjust-bad-amount = 🤔 That is not an adjustment. Send an amount such as <code>+5</code> or <code>-2.50</code> (not zero, to the cent), or /cancel.
admin-adjust-ask-reason = ✍️ Now send the reason. It is recorded in the audit log and the ledger.
admin-adjust-bad-reason = 🤔 The reason must be { $min } to { $max } characters. Send it again, or /cancel.
admin-adjust-preview = ⚖️ <b>Adjustment for user { $id }</b>: { $amount }
    Balance: { $before } → <b>{ $after }</b>
    Reason: { $reason }
admin-adjust-check = Check it, then press Continue.
admin-adjust-continue = Continue »
admin-adjust-really = ⚠️ <b>Really adjust the balance?</b> This moves money; undoing it takes another adjustment.
admin-adjust-yes = ✅ Yes, really
admin-adjust-already = This adjustment was already made.
admin-adjust-cancelled = Adjustment cancelled. Nothing changed.
admin-adjust-below-zero = Refused: the balance cannot go below zero.
admin-adjust-refused = ⛔ Not adjusted: { $amount } would take the balance below zero (it is { $balance }). Nothing changed.
admin-adjust-done-short = Adjusted.
admin-adjust-done = ✅ Adjusted user { $id } by { $amount }. Balance now: <b>{ $balance }</b>.

## Orders needing attention

admin-attention-none = 🚨 No orders need attention: nothing is being verified or waiting long.
admin-attention-title = 🚨 <b>Orders needing attention: { $count }</b>
admin-attention-order = #{ $id } { $count } { $product } → @{ $recipient }, { $amount }: <b>{ $state }</b>, { $attempts } attempts; { $error }
admin-retry = 🔁 Retry
admin-refund = ↩️ Refund
admin-order-final = Order #{ $id } is already { $state }.
admin-order-retrying = Order #{ $id } will be tried again now.
admin-refund-confirm = ↩️ <b>Refund order #{ $id }?</b>
    { $amount } goes back to user { $user }'s balance. The order is { $state }: if its payment may have left the wallet, it is refunded only when Fragment confirms the payment failed.
admin-refund-yes = ↩️ Yes, refund
admin-back-to-orders = « Orders
admin-refund-done = ✅ Order #{ $id } refunded: { $amount } is back on the user's balance.
admin-refund-paid = Order #{ $id } was paid, says Fragment: not refunded. It is being completed now.
admin-refund-unsafe = ⛔ Not refunded: order #{ $id }'s payment may still go through (Fragment says: { $status }). Retry it, or try again later.
admin-refund-busy = ⏳ A payment is being made right now. Try again in a few seconds (order #{ $id } is unchanged).
refund-reason-admin = the shop cancelled the order

## Maintenance

maintenance-default = 🚧 The shop is under maintenance. Please come back a little later; your balance and orders are safe.
admin-maintenance-on = 🚧 Maintenance mode is <b>ON</b>: users see this message instead of the bot. Payments and orders in progress still complete.
    { $message }
admin-maintenance-off = 🚧 Maintenance mode is <b>off</b>. When on, users see this message:
    { $message }
admin-maintenance-turn-on = 🚧 Turn on
admin-maintenance-turn-off = ✅ Turn off
admin-maintenance-set-text = ✏️ Change the message
admin-maintenance-ask-text = ✏️ Send the message users should see (up to { $max } characters), or <code>-</code> for the standard one.
admin-maintenance-bad-text = 🤔 The message must be 1 to { $max } characters. Send it again, or /cancel.

## Prices

admin-prices-title = 🏷 <b>Prices</b> (new prices apply to quotes from now on; placed orders keep theirs)
admin-prices-star = ⭐ One star: <b>{ $price }</b> (shopbot.toml: { $configured })
admin-prices-premium = 🎁 Premium, { $months } months: <b>{ $price }</b> (shopbot.toml: { $configured })
admin-prices-cost = └ cost { $cost } · margin <b>{ $margin }</b>
admin-prices-cost-low = └ cost { $cost } · margin <b>{ $margin }</b> ⚠️ below the minimum of { $minimum }: the cost guard refuses these sales
admin-prices-cost-unknown = └ cost unknown · margin unknown
admin-prices-mode-fixed = ⚙️ Mode: <b>fixed</b> — the prices below stay until an admin changes them
admin-prices-mode-auto = ⚙️ Mode: <b>auto</b> — every { $seconds } s: cost + { $markup } %, rounded up, within the floor and ceiling; a price set here lasts until then
admin-prices-rate = 💱 TON rate: { $rate } (Heleket, { $when })
admin-prices-rate-unknown = 💱 TON rate: ⚠️ unknown — costs are unknown, and the cost guard refuses every order
admin-prices-last = 🕓 Last reprice: { $when } by { $who }
admin-prices-last-none = 🕓 Last reprice: —
admin-prices-by-admin = admin { $id }
admin-prices-by-pricing = automatic pricing
admin-price-star = the price of one star
admin-price-premium = the price of { $months } months of Premium
admin-price-button-star = ⭐ Star
admin-price-button-3 = 🎁 3 m
admin-price-button-6 = 🎁 6 m
admin-price-button-12 = 🎁 12 m
admin-prices-reset = ↺ Back to shopbot.toml
admin-price-ask = 🏷 Send { $item } (now { $price }): a positive number with at most { $places } decimals.
admin-price-not-a-number = 🤔 That is not a price. Send a number such as <code>0.02</code> (at most { $places } decimals), or /cancel.
admin-price-out-of-range = 🤔 A price must be above zero and below 100000. Send another, or /cancel.
admin-price-too-precise = 🤔 At most { $places } decimals. Send it again, or /cancel.
admin-price-star-too-low = 🤔 At that price { $count } stars would cost less than a cent. Send a higher price, or /cancel.
