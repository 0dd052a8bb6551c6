## Промокоды: активация (/promo), скидка в подтверждении покупки и коды в админке.

menu-promo = 🎟 Промокод
cmd-promo = Активировать промокод
promo-ask = 🎟 Отправьте промокод (буквы и цифры) или в любой момент /promo КОД.
promo-credited = 🎉 Код <b>{ $code }</b>: на ваш баланс зачислено <b>{ $amount }</b>.
promo-discount-saved = 🎉 Код <b>{ $code }</b>: скидка <b>{ $percent }%</b> на следующую покупку (не больше { $cap }). Она будет видна в подтверждении заказа.
promo-refused-bad-code = «{ $code }» — не промокод: код состоит из 3–32 букв и цифр.
promo-refused-unknown = Промокода { $code } нет. Проверьте, правильно ли он написан.
promo-refused-switched-off = Промокод { $code } отключён.
promo-refused-expired = Срок действия промокода { $code } истёк.
promo-refused-used-up = Промокод { $code } закончился: его больше нельзя активировать.
promo-refused-already-used = Вы уже использовали промокод { $code } столько раз, сколько он позволяет.
promo-summary-discount = Скидка ({ $code }, { $percent }%): <b>−{ $discount }</b>
promo-summary-total = Итого: <b>{ $total }</b>
promo-discount-gone = Вашу скидку { $code } уже использовал другой заказ, поэтому цена указана без неё.

admin-menu-promo = 🎟 Промокоды
admin-promo-title = <b>🎟 Промокоды</b> (сначала новые)
admin-promo-none = Кодов пока нет.
admin-promo-line =
    <b>{ $code }</b> · { $gives } · { $status }
    использовано { $uses } из { $max } · { $per_user ->
        [one] { $per_user } раз
        [few] { $per_user } раза
       *[many] { $per_user } раз
    } на пользователя{ $until }
admin-promo-gives-credit = +{ $amount } на баланс
admin-promo-gives-discount = скидка { $percent }% на одну покупку, не больше { $cap }
admin-promo-until = {" "}· до { $when }
admin-promo-on = ✅ включён
admin-promo-off = ⏸ выключен
admin-promo-expired = ⌛ истёк
admin-promo-used-up = 🈵 закончился
admin-promo-new = ➕ Новый код
admin-promo-switch-off = ⏸ Выкл.
admin-promo-switch-on = ▶️ Вкл.
admin-promo-change = ✏️ Лимиты
admin-promo-ask-limits =
    Отправьте новые лимиты кода одним сообщением: <code>ИСПОЛЬЗОВАНИЙ [НА_ПОЛЬЗОВАТЕЛЯ] [ГГГГ-ММ-ДД]</code>, например <code>200 1 2026-12-31</code>.
    Без даты код бессрочный. То, что код даёт, не меняется.
admin-promo-below-uses = Уже { $uses ->
        [one] использован { $uses } раз
        [few] использовано { $uses } раза
       *[many] использовано { $uses } раз
    }: всего не может быть меньше.
admin-promo-ask =
    Отправьте новый код одним сообщением:
    <code>ИМЯ credit СУММА ИСПОЛЬЗОВАНИЙ [НА_ПОЛЬЗОВАТЕЛЯ] [ГГГГ-ММ-ДД]</code>
    <code>ИМЯ discount ПРОЦЕНТ ПОТОЛОК ИСПОЛЬЗОВАНИЙ [НА_ПОЛЬЗОВАТЕЛЯ] [ГГГГ-ММ-ДД]</code>
    Например <code>WELCOME credit 1.50 100</code> или <code>SPRING discount 10 5.00 50 1 2026-12-31</code>.
    НА_ПОЛЬЗОВАТЕЛЯ — сколько раз один пользователь может его использовать (один, если не указано); дата — последний день действия (UTC).
admin-promo-bad-format = Это не похоже на описание кода.
admin-promo-bad-name = Имя — от 3 до 32 латинских букв и цифр.
admin-promo-bad-amount = Сумма — положительное число, не больше 2 знаков после точки (и не больше 100000).
admin-promo-bad-percent = Процент — больше 0 и меньше 100, не больше 2 знаков после точки.
admin-promo-bad-uses = Использования — целые числа больше 0, и на пользователя не больше, чем всего.
admin-promo-bad-date = Дата — в виде ГГГГ-ММ-ДД, сегодня или позже.
admin-promo-taken = Код { $code } уже есть. Выберите другое имя.
