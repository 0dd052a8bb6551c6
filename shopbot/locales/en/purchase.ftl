# Buying Stars and gifting Premium: the screens from the choice to the "queued" answer.
# The later notices (delivered, refunded, delayed) are in notices.ftl.

stars-title =
    ⭐ <b>Telegram Stars</b>
    Choose a package, or enter another amount. Stars arrive on the recipient's Telegram account through Fragment.
stars-package = ⭐ { $count } — { $price }
stars-other = ✏️ Other amount
stars-ask-count = ✏️ How many Stars would you like? Send a whole number from { $min } to { $max }.
stars-not-a-number = That is not a whole number. Send the number of Stars, like { $example }.
stars-too-few = Stars are sold from { $min } per order. Please send a larger number.
stars-too-many = At most { $max } Stars per order. Please send a smaller number.
stars-usage = To buy at once, send /buy_stars &lt;count&gt; [@username], like /buy_stars { NUMBER($example, useGrouping: 0) } @durov. Without a username the Stars are for you.

premium-title =
    🎁 <b>Telegram Premium</b>
    For how long? Premium is gifted to the recipient's Telegram account through Fragment.
premium-option = { $months } months — { $price }
premium-usage = Premium is sold for 3, 6 or 12 months. To buy at once, send /premium &lt;months&gt; [@username], like /premium 3 @durov. Without a username it is for you.

purchase-stars = ⭐ { $count } Telegram Stars
purchase-premium = 🎁 Telegram Premium for { $months } months
purchase-for-whom =
    <b>{ $what }</b> — { $price }
    Who is it for?
purchase-for-me = 🙋 For myself
purchase-for-other = 🎁 For someone else
purchase-ask-username = Send the recipient's Telegram username, like @durov.
purchase-no-username = You have no Telegram username, so Fragment cannot find you. Set one in Telegram's settings and send it here, like @your_name — or send the username of the person you are buying for.
purchase-bad-username = “{ $typed }” is not a Telegram username: a username has 5 to 32 letters, digits or underscores, like @durov. Please send it again.
purchase-looking-up = 🔎 Looking up @{ $recipient } on Fragment…
purchase-not-found = 🤷 Fragment knows no Telegram user @{ $recipient }. Check the spelling and send the username again.
purchase-unavailable = ⏳ Fragment cannot be reached right now, and nothing was bought. Please try again in a few minutes.
purchase-busy = ⏳ Fragment is busy with other lookups right now, and nothing was bought. Please send the username again in a moment.
purchase-not-configured = 🚧 The shop is not selling yet, and nothing was bought. Please come back later.
purchase-bad-quantity = The shop does not sell that amount, and nothing was bought.

purchase-summary =
    🧾 <b>{ $what }</b>
    Recipient: <b>{ $name }</b> (@{ $recipient })
    Price: <b>{ $price }</b>
purchase-balance-after = Balance after: <b>{ $balance }</b>
purchase-check = Please check the order and confirm.
purchase-shortfall =
    ⚠️ Not enough balance: you have { $balance }.
    Top up at least <b>{ $shortfall }</b> to buy this.
purchase-confirm = ✅ Confirm
purchase-cancel = ✖️ Cancel
purchase-queued = ⏳ Order #{ $id } is queued: { $what }. I will message you as soon as it is delivered.
purchase-already-ordered = Already ordered: this confirmation has been used once, and pressing it again buys nothing.
purchase-stale = This confirmation is no longer valid, and nothing was bought. Please start again from the menu.
purchase-cancelled = Cancelled. Nothing was bought.
purchase-requoted = ⏱ That price was quoted a while ago, so it is checked again: here is the order at today's price. Nothing was bought yet; press Confirm to buy.
