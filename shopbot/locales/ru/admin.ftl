# Раздел администратора (shopbot/admin/): его видят только [telegram] admin_ids, кроме maintenance-default и
# refund-reason-admin, которые читают пользователи.

admin-title = 🛠 <b>Раздел администратора</b>
    Что посмотреть?
admin-menu-dashboard = 📊 Сводка
admin-menu-users = 👤 Пользователи
admin-menu-attention = 🚨 Заказы, требующие внимания
admin-menu-broadcast = 📣 Рассылка
admin-menu-maintenance = 🚧 Техработы
admin-menu-prices = 🏷 Цены
admin-back = « Меню администратора
admin-cancel = ✖️ Отмена
admin-cancelled = Отменено.
admin-stale = Этот ввод устарел. Откройте /admin заново.
admin-none = нет
admin-saved = ✅ Сохранено.
admin-refresh = 🔄 Обновить

admin-state-created = создан
admin-state-queued = в очереди
admin-state-paying = оплачивается
admin-state-verifying = проверяется
admin-state-completed = выполнен
admin-state-refunded = возвращён

## Сводка

admin-period-today = Сегодня
admin-period-7d = 7 дней
admin-period-30d = 30 дней
admin-dash-title = 📊 <b>Сводка: { $period }</b> (с { $since })
admin-dash-topups = 💳 Пополнения: { $count }, { $amount }
admin-dash-orders = 🧾 Заказы: { $orders }
admin-dash-sold = ⭐ Продано звёзд: { $stars }; 🎁 подарков Premium: { $count } ({ $months } мес.)
admin-dash-revenue = 💰 Продажи { $sales } − затраты Fragment { $cost } = <b>выручка { $revenue }</b>
admin-dash-margin = 📐 Маржа: <b>{ $margin }</b> от продаж
admin-dash-margin-none = 📐 Маржа: — (продаж нет)
admin-dash-uncosted = ⚠️ Продаж без учтённой себестоимости (курс TON был неизвестен): { $count }; здесь их себестоимость считается равной 0
admin-dash-users = 👥 Пользователи: новых { $new }, активных { $active }
admin-dash-wallet = 👛 Кошелёк: { $ton } TON
admin-cookies-not-needed = 🍪 Cookies: не нужны (режим без KYC)
admin-cookies-none = 🍪 Cookies: ⚠️ не сохранены — выполните <code>shopbot fragment login</code>
admin-cookies-lost = 🍪 Cookies: ⚠️ сессия потеряна ({ $when }) — выполните <code>shopbot fragment login</code>
admin-cookies-ok = 🍪 Cookies: ✅ проверены { $when }
admin-dash-circuits = 🔌 Автоматы: { $states }
admin-chart = 📈 График продаж и затрат по дням
admin-chart-drawing = Рисую график…
admin-chart-title = Продажи и затраты Fragment по дням, последние { $count } дн.
admin-chart-caption = 📈 Продажи и затраты Fragment по дням за последние { $count } дн.: продано на { $amount }, затраты { $cost }.
admin-chart-failed = Не удалось отправить график. Попробуйте ещё раз.

## Пользователи

admin-user-ask = 👤 Пришлите Telegram id пользователя или @username.
admin-user-not-found = Пользователь { $typed } магазином не пользовался. Пришлите другой id или @username, или /cancel.
admin-user-title = 👤 <b>{ $name }</b> · id <code>{ $id }</code> · { $username }
admin-user-seen = Язык { $lang }; впервые { $first }; последний раз { $last }
admin-user-balance = 💰 Баланс: <b>{ $balance }</b>; зарезервировано под заказы: { $amount }
admin-user-movements = <b>Последние движения</b>
admin-user-movement = #{ $id } { $type }: { $amount } (резерв { $held }), { $when } { $memo }
admin-user-orders = <b>Последние заказы</b>
admin-user-order = #{ $id } { $count } { $product } → @{ $recipient }, { $amount }, { $state }, { $when }
admin-adjust = ⚖️ Изменить баланс
admin-user-refresh = 🔄 Профиль
admin-user-another = 🔎 Другой пользователь
admin-adjust-ask-amount = ⚖️ Баланс пользователя { $id }: { $balance }.
    Пришлите корректировку: <code>+5</code> добавляет, <code>-2.50</code> списывает (до цента).
admin-adjust-bad-amount = 🤔 Это не корректировка. Пришлите сумму вроде <code>+5</code> или <code>-2.50</code> (не ноль, до цента), или /cancel.
admin-adjust-ask-reason = ✍️ Теперь пришлите причину. Она попадёт в журнал аудита и в реестр.
admin-adjust-bad-reason = 🤔 Причина должна быть длиной от { $min } до { $max } символов. Пришлите ещё раз, или /cancel.
admin-adjust-preview = ⚖️ <b>Корректировка для пользователя { $id }</b>: { $amount }
    Баланс: { $before } → <b>{ $after }</b>
    Причина: { $reason }
admin-adjust-check = Проверьте и нажмите «Далее».
admin-adjust-continue = Далее »
admin-adjust-really = ⚠️ <b>Точно изменить баланс?</b> Деньги будут перемещены; отменить можно только новой корректировкой.
admin-adjust-yes = ✅ Да, точно
admin-adjust-already = Эта корректировка уже выполнена.
admin-adjust-cancelled = Корректировка отменена. Ничего не изменилось.
admin-adjust-below-zero = Отказано: баланс не может стать отрицательным.
admin-adjust-refused = ⛔ Не изменено: { $amount } сделало бы баланс отрицательным (сейчас { $balance }). Ничего не изменилось.
admin-adjust-done-short = Готово.
admin-adjust-done = ✅ Баланс пользователя { $id } изменён на { $amount }. Теперь: <b>{ $balance }</b>.

## Заказы, требующие внимания

admin-attention-none = 🚨 Внимания не требует ни один заказ: ничего не проверяется и не ждёт долго.
admin-attention-title = 🚨 <b>Заказы, требующие внимания: { $count }</b>
admin-attention-order = #{ $id } { $count } { $product } → @{ $recipient }, { $amount }: <b>{ $state }</b>, попыток { $attempts }; { $error }
admin-retry = 🔁 Повторить
admin-refund = ↩️ Вернуть
admin-order-final = Заказ #{ $id } уже { $state }.
admin-order-retrying = Заказ #{ $id } будет повторён сейчас.
admin-refund-confirm = ↩️ <b>Вернуть деньги за заказ #{ $id }?</b>
    { $amount } вернётся на баланс пользователя { $user }. Заказ { $state }: если его оплата могла уйти из кошелька, возврат будет только когда Fragment подтвердит, что оплата не прошла.
admin-refund-yes = ↩️ Да, вернуть
admin-back-to-orders = « Заказы
admin-refund-done = ✅ Заказ #{ $id } возвращён: { $amount } снова на балансе пользователя.
admin-refund-paid = Заказ #{ $id } оплачен, по словам Fragment: возврата нет. Сейчас он будет завершён.
admin-refund-unsafe = ⛔ Не возвращено: оплата заказа #{ $id } ещё может пройти (Fragment: { $status }). Повторите его или попробуйте позже.
admin-refund-busy = ⏳ Сейчас идёт оплата. Попробуйте через несколько секунд (заказ #{ $id } не изменён).
refund-reason-admin = магазин отменил заказ

## Техработы

maintenance-default = 🚧 В магазине идут технические работы. Загляните чуть позже; ваш баланс и заказы в сохранности.
admin-maintenance-on = 🚧 Режим техработ <b>ВКЛЮЧЁН</b>: пользователи видят это сообщение вместо бота. Платежи и заказы в работе завершатся.
    { $message }
admin-maintenance-off = 🚧 Режим техработ <b>выключен</b>. Когда он включён, пользователи видят:
    { $message }
admin-maintenance-turn-on = 🚧 Включить
admin-maintenance-turn-off = ✅ Выключить
admin-maintenance-set-text = ✏️ Изменить сообщение
admin-maintenance-ask-text = ✏️ Пришлите сообщение для пользователей (до { $max } символов) или <code>-</code> для стандартного.
admin-maintenance-bad-text = 🤔 Сообщение должно быть длиной от 1 до { $max } символов. Пришлите ещё раз, или /cancel.

## Цены

admin-prices-title = 🏷 <b>Цены</b> (новые цены действуют для новых расчётов; у оформленных заказов цена прежняя)
admin-prices-star = ⭐ Одна звезда: <b>{ $price }</b> (shopbot.toml: { $configured })
admin-prices-premium = 🎁 Premium, { $months } мес.: <b>{ $price }</b> (shopbot.toml: { $configured })
admin-prices-cost = └ себестоимость { $cost } · маржа <b>{ $margin }</b>
admin-prices-cost-low = └ себестоимость { $cost } · маржа <b>{ $margin }</b> ⚠️ ниже минимума { $minimum }: проверка себестоимости отклонит такие продажи
admin-prices-cost-unknown = └ себестоимость неизвестна · маржа неизвестна
admin-prices-mode-fixed = ⚙️ Режим: <b>фиксированный</b> — цены ниже действуют, пока их не изменит администратор
admin-prices-mode-auto = ⚙️ Режим: <b>авто</b> — каждые { $seconds } с: себестоимость + { $markup } %, с округлением вверх, в пределах минимума и максимума; цена, заданная здесь, действует до пересчёта
admin-prices-rate = 💱 Курс TON: { $rate } (Heleket, { $when })
admin-prices-rate-unknown = 💱 Курс TON: ⚠️ неизвестен — себестоимость неизвестна, и проверка себестоимости отклоняет все заказы
admin-prices-last = 🕓 Последнее изменение цен: { $when }, { $who }
admin-prices-last-none = 🕓 Последнее изменение цен: —
admin-prices-by-admin = администратор { $id }
admin-prices-by-pricing = автоматическое ценообразование
admin-price-star = цену одной звезды
admin-price-premium = цену Premium на { $months } мес.
admin-price-button-star = ⭐ Звезда
admin-price-button-3 = 🎁 3 мес.
admin-price-button-6 = 🎁 6 мес.
admin-price-button-12 = 🎁 12 мес.
admin-prices-reset = ↺ Как в shopbot.toml
admin-price-ask = 🏷 Пришлите { $item } (сейчас { $price }): положительное число, не больше { $places } знаков после точки.
admin-price-not-a-number = 🤔 Это не цена. Пришлите число вроде <code>0.02</code> (не больше { $places } знаков после точки), или /cancel.
admin-price-out-of-range = 🤔 Цена должна быть больше нуля и меньше 100000. Пришлите другую, или /cancel.
admin-price-too-precise = 🤔 Не больше { $places } знаков после точки. Пришлите ещё раз, или /cancel.
admin-price-star-too-low = 🤔 По такой цене { $count } звёзд стоили бы меньше цента. Пришлите цену повыше, или /cancel.
