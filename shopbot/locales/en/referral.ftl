# Referrals: /referral, the Invite button, the inviter's notices, history and the admin's view.
# $link is the user's own link; $percent and $months come from [referral] in shopbot.toml.

menu-referral = 🤝 Invite friends
cmd-referral = Invite friends, earn bonuses

referral-title = 🤝 <b>Invite friends</b>
referral-explain = Share your link. When a friend starts the shop through it, you get { $percent } % of every top-up they make for { $months ->
        [one] { $months } month
       *[other] { $months } months
    }, straight to your balance.
referral-link = 🔗 Your link: { $link }
referral-joined = 👥 Joined through your link: { $count }
referral-earned = 💰 Earned: { $amount } ({ $count ->
        [one] { $count } bonus
       *[other] { $count } bonuses
    })
referral-recent = Last bonuses:
referral-entry = +{ $amount }
referral-entry-flagged = +{ $amount } ⚠️ the top-up was refunded; the shop will review it
referral-share = 📤 Share the link
referral-share-text = Buy Telegram Stars and Premium with crypto
referral-off = 🤝 The referral programme is switched off in this shop.

notice-referral-joined = 👥 Someone just joined through your link. From now on their top-ups earn you a bonus.
notice-referral-bonus = 🎁 <b>Referral bonus: { $amount }</b> for a friend's top-up. Your balance: { $balance }

history-referral-bonus = 🤝 Referral bonus { $amount }

## Admin
# $count users, $bonuses bonuses, $amount money; $what a user ("Ann (@ann)") or a list of them.
admin-referral-figures = 🤝 Referrals: { $count ->
        [one] { $count } user joined
       *[other] { $count } users joined
    } through links, { $bonuses ->
        [one] { $bonuses } bonus
       *[other] { $bonuses } bonuses
    } paid: { $amount }
admin-referral-flagged = ⚠️ { $count ->
        [one] { $count } bonus is
       *[other] { $count } bonuses are
    } flagged: Heleket reported the top-up refunded after the bonus was paid.
admin-referral-top = 🏆 Top inviters: { $what }
admin-referral-invited-by = 🤝 Invited by { $what } on { $when }
admin-referral-not-invited = 🤝 Not invited by anyone
admin-referral-invitees = 👥 Invited { $count ->
        [one] { $count } user
       *[other] { $count } users
    }:
admin-referral-invitee =   • { $what }: bonuses { $amount }
admin-referral-invitee-flagged =   • { $what }: bonuses { $amount } ⚠️ { $count } flagged (top-up refunded)
