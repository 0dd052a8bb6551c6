# Admin broadcasts (shopbot/admin/broadcast_flow.py and broadcast_sender.py).
broadcast-ask-text = 📣 <b>New broadcast</b>
    Send the message as users should get it. Formatting (bold, italics, links, spoilers…) is kept. Text only: photos and files are not supported.
broadcast-text-only = Please send the message as text. Photos, files and stickers are not supported.
broadcast-ask-button = Add a link button under the message? Send it as <code>Button text | https://example.com</code>, or press “No button”.
broadcast-bad-button = That is not a button. Send it as <code>Button text | https://example.com</code> (text up to 64 characters, an http or https address), or press “No button”.
broadcast-no-button = No button
broadcast-quit = ✖️ Cancel
broadcast-quit-done = Broadcast cancelled. Nothing was sent.
broadcast-ask-segment = Who should get it?
broadcast-segment-all = Everyone
broadcast-segment-en = English speakers
broadcast-segment-ru = Russian speakers
broadcast-segment-7d = Active in 7 days
broadcast-segment-30d = Active in 30 days
broadcast-preview-below = 👇 The preview: exactly what users will get.
broadcast-preview-refused = Telegram refused this message: { $reason }. Nothing was sent; start again with /broadcast.
broadcast-confirm = 📣 Broadcast #{ $id } to: { $segment }.
    It goes to { $count ->
        [one] { $count } user
       *[other] { $count } users
    } (counted again when sending starts).
broadcast-send = 🚀 Send
broadcast-cancel = ✖️ Cancel
broadcast-pause = ⏸ Pause
broadcast-resume = ▶️ Resume
broadcast-started = Sending started: { $count ->
        [one] { $count } recipient
       *[other] { $count } recipients
    }.
broadcast-pause-done = Paused.
broadcast-resume-done = Sending again.
broadcast-cancel-done = Cancelled.
broadcast-draft-cancelled = Broadcast #{ $id } cancelled. Nothing was sent.
broadcast-state-sending = 📣 Broadcast #{ $id }: sending…
broadcast-state-paused = ⏸ Broadcast #{ $id }: paused
broadcast-state-done = ✅ Broadcast #{ $id }: finished
broadcast-state-cancelled = ✖️ Broadcast #{ $id }: cancelled
broadcast-counts = Sent: { $sent } of { $total }
    Blocked the bot: { $blocked } · Failed: { $failed }
broadcast-unknown = Possibly not delivered (the shop stopped while sending them; not sent again): { $count }
broadcast-not-sent = Not sent: { $count }
broadcast-stale = This button is out of date. Start a new broadcast with /broadcast.
broadcast-already = Broadcast #{ $id } is { $state }: this button no longer applies.
broadcast-is-draft = a draft
broadcast-is-sending = being sent
broadcast-is-paused = paused
broadcast-is-done = finished
broadcast-is-cancelled = cancelled
