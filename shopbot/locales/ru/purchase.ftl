# Покупка звёзд и подарок Premium: экраны от выбора до ответа «в очереди».
# Дальнейшие уведомления (доставлено, возврат, задержка) — в notices.ftl.

stars-title =
    ⭐ <b>Telegram Stars</b>
    Выберите пакет или укажите другое количество. Звёзды придут на аккаунт получателя в Telegram через Fragment.
stars-package = ⭐ { $count } — { $price }
stars-other = ✏️ Другое количество
stars-ask-count = ✏️ Сколько звёзд вы хотите? Отправьте целое число от { $min } до { $max }.
stars-not-a-number = Это не целое число. Отправьте количество звёзд, например { $example }.
stars-too-few = Звёзды продаются от { $min } { $min ->
        [one] звезды
       *[other] звёзд
    } за заказ. Отправьте число побольше.
stars-too-many = Не больше { $max } { $max ->
        [one] звезды
       *[other] звёзд
    } за заказ. Отправьте число поменьше.
stars-usage = Чтобы купить сразу, отправьте /buy_stars &lt;количество&gt; [@username], например /buy_stars { NUMBER($example, useGrouping: 0) } @durov. Без имени пользователя звёзды будут для вас.

premium-title =
    🎁 <b>Telegram Premium</b>
    На какой срок? Premium будет подарен на аккаунт получателя в Telegram через Fragment.
premium-option = { $months } { $months ->
        [one] месяц
        [few] месяца
       *[many] месяцев
    } — { $price }
premium-usage = Premium продаётся на 3, 6 или 12 месяцев. Чтобы купить сразу, отправьте /premium &lt;месяцы&gt; [@username], например /premium 3 @durov. Без имени пользователя — для вас.

purchase-stars = ⭐ { $count } { $count ->
        [one] звезда
        [few] звезды
       *[many] звёзд
    } Telegram
purchase-premium = 🎁 Telegram Premium на { $months } { $months ->
        [one] месяц
        [few] месяца
       *[many] месяцев
    }
purchase-for-whom =
    <b>{ $what }</b> — { $price }
    Для кого?
purchase-for-me = 🙋 Себе
purchase-for-other = 🎁 Другому человеку
purchase-ask-username = Отправьте имя пользователя получателя в Telegram, например @durov.
purchase-no-username = У вас нет имени пользователя в Telegram, поэтому Fragment не сможет вас найти. Задайте его в настройках Telegram и отправьте сюда, например @your_name, — или отправьте имя пользователя того, кому покупаете.
purchase-bad-username = «{ $typed }» — не имя пользователя Telegram: в нём от 5 до 32 латинских букв, цифр или подчёркиваний, например @durov. Отправьте его ещё раз.
purchase-looking-up = 🔎 Ищу @{ $recipient } на Fragment…
purchase-not-found = 🤷 Fragment не знает пользователя Telegram @{ $recipient }. Проверьте написание и отправьте имя пользователя ещё раз.
purchase-unavailable = ⏳ Fragment сейчас недоступен, ничего не куплено. Попробуйте через несколько минут.
purchase-busy = ⏳ Fragment сейчас занят другими запросами, ничего не куплено. Отправьте имя пользователя ещё раз через минутку.
purchase-not-configured = 🚧 Магазин пока не продаёт, ничего не куплено. Загляните позже.
purchase-bad-quantity = Магазин не продаёт такое количество, ничего не куплено.

purchase-summary =
    🧾 <b>{ $what }</b>
    Получатель: <b>{ $name }</b> (@{ $recipient })
    Цена: <b>{ $price }</b>
purchase-balance-after = Баланс после покупки: <b>{ $balance }</b>
purchase-check = Проверьте заказ и подтвердите.
purchase-shortfall =
    ⚠️ Недостаточно средств: на балансе { $balance }.
    Пополните баланс минимум на <b>{ $shortfall }</b>, чтобы купить это.
purchase-confirm = ✅ Подтвердить
purchase-cancel = ✖️ Отмена
purchase-queued = ⏳ Заказ #{ $id } в очереди: { $what }. Я напишу, как только он будет доставлен.
purchase-already-ordered = Уже заказано: это подтверждение уже использовано, повторное нажатие ничего не покупает.
purchase-stale = Это подтверждение больше не действует, ничего не куплено. Начните заново из меню.
purchase-cancelled = Отменено. Ничего не куплено.
purchase-requoted = ⏱ Эта цена была рассчитана давно, поэтому мы проверили её заново: вот заказ по сегодняшней цене. Пока ничего не куплено; нажмите «Подтвердить», чтобы купить.
