## Promo codes: redeeming one (/promo), the discount in the purchase confirmation, and the admin's codes.

menu-promo = 🎟 Promo code
cmd-promo = Redeem a promo code
promo-ask = 🎟 Send your promo code (letters and digits), or /promo CODE at any time.
promo-credited = 🎉 Code <b>{ $code }</b> added <b>{ $amount }</b> to your balance.
promo-discount-saved = 🎉 Code <b>{ $code }</b>: <b>{ $percent }%</b> off your next purchase (up to { $cap }). You will see it in the order confirmation.
promo-refused-bad-code = “{ $code }” is not a promo code: codes are 3 to 32 letters and digits.
promo-refused-unknown = There is no promo code { $code }. Please check the spelling.
promo-refused-switched-off = The promo code { $code } has been switched off.
promo-refused-expired = The promo code { $code } has expired.
promo-refused-used-up = The promo code { $code } has been used up: nobody can redeem it any more.
promo-refused-already-used = You have already used the promo code { $code } as often as it allows.
promo-summary-discount = Discount ({ $code }, { $percent }%): <b>−{ $discount }</b>
promo-summary-total = Total: <b>{ $total }</b>
promo-discount-gone = Your discount { $code } was used by another order, so this price is without it.

admin-menu-promo = 🎟 Promo codes
admin-promo-title = <b>🎟 Promo codes</b> (newest first)
admin-promo-none = No codes yet.
admin-promo-line =
    <b>{ $code }</b> · { $gives } · { $status }
    { $uses } of { $max } { $max ->
        [one] use
       *[other] uses
    } taken · { $per_user ->
        [one] once
       *[other] { $per_user } times
    } per user{ $until }
admin-promo-gives-credit = +{ $amount } to the balance
admin-promo-gives-discount = { $percent }% off one purchase, up to { $cap }
admin-promo-until = {" "}· until { $when }
admin-promo-on = ✅ on
admin-promo-off = ⏸ off
admin-promo-expired = ⌛ expired
admin-promo-used-up = 🈵 used up
admin-promo-new = ➕ New code
admin-promo-switch-off = ⏸ Off
admin-promo-switch-on = ▶️ On
admin-promo-change = ✏️ Limits
admin-promo-ask-limits =
    Send the code's new limits in one message: <code>USES [PER_USER] [YYYY-MM-DD]</code>, for example <code>200 1 2026-12-31</code>.
    Without a date the code does not expire. What the code gives does not change.
admin-promo-below-uses = { $uses ->
        [one] { $uses } use is taken already
       *[other] { $uses } uses are taken already
    }: the total cannot be less.
admin-promo-ask =
    Send the new code in one message:
    <code>NAME credit AMOUNT USES [PER_USER] [YYYY-MM-DD]</code>
    <code>NAME discount PERCENT CAP USES [PER_USER] [YYYY-MM-DD]</code>
    For example <code>WELCOME credit 1.50 100</code> or <code>SPRING discount 10 5.00 50 1 2026-12-31</code>.
    PER_USER is how often one user may use it (once if left out); the date is the last day it works (UTC).
admin-promo-bad-format = That is not the shape of a code.
admin-promo-bad-name = The name must be 3 to 32 Latin letters and digits.
admin-promo-bad-amount = Amounts are positive, with at most 2 decimal places (and at most 100000).
admin-promo-bad-percent = The percent must be more than 0 and less than 100, with at most 2 decimal places.
admin-promo-bad-uses = Uses are whole numbers above 0, and the uses per user are not more than the total.
admin-promo-bad-date = The date must be YYYY-MM-DD, today or later.
admin-promo-taken = A code named { $code } exists already. Choose another name.
