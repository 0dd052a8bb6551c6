# Счёт: баланс, пополнение, история, язык, помощь.
# Переменные — те же имена, с которыми проверяется каждый текст (tests/bot/test_locales.py): $amount и
# $balance — уже отформатированные суммы («15.00 USD»), $count — число, $id — номер счёта или
# заказа, $what — уже отформатированное описание, $name — контакт поддержки.

## Баланс

balance-available = 💰 <b>Ваш баланс:</b> { $balance }
balance-held = ⏳ Зарезервировано под заказы в работе: { $amount }
balance-empty-hint = Пополните баланс криптовалютой, чтобы покупать Telegram Stars и Premium.

## Пополнение

recharge-choose = ➕ <b>Пополнение баланса</b>
    Выберите сумму или введите свою. Оплата — криптовалютой на странице Heleket.
recharge-minimum = Минимум: { $amount }
recharge-maximum = Максимум: { $amount }
recharge-other = ✏️ Другая сумма
recharge-ask-amount = ✏️ Отправьте сумму числом, например <code>15</code> или <code>12.50</code>.
recharge-not-a-number = 🤔 Это не сумма. Отправьте число, например <code>15</code> или <code>12.50</code>, или /cancel.
recharge-too-precise = 🤔 Сумма указывается с точностью до цента: не больше двух знаков после точки. Попробуйте ещё раз или /cancel.
recharge-too-small = Минимальное пополнение — { $amount }. Отправьте сумму побольше или /cancel.
recharge-too-large = Максимальное пополнение — { $amount }. Отправьте сумму поменьше или /cancel.
recharge-not-configured = Пополнение в этом магазине пока недоступно. Попробуйте позже.
recharge-unavailable = Платёжный сервис сейчас не отвечает. Попробуйте через несколько минут.
# $count — сколько неоплаченных пополнений у пользователя открыто (столько, сколько разрешает магазин).
recharge-too-many-open = ✋ У вас уже { $count ->
        [one] { $count } неоплаченное пополнение
        [few] { $count } неоплаченных пополнения
       *[many] { $count } неоплаченных пополнений
    }. Оплатите одно из них кнопкой ниже или дождитесь, пока одно истечёт, и пополните снова.
# $what — время (UTC), когда истечёт первое открытое пополнение.
recharge-first-expiry = ⏰ Первое истекает в { $what } UTC.
recharge-pay-open = 💳 Оплатить №{ $id }: { $amount }
recharge-invoice = 🧾 <b>Пополнение №{ $id }</b>: <b>{ $amount }</b>
    Нажмите «Оплатить» и оплатите криптовалютой на странице Heleket. Деньги зачислятся на баланс автоматически, и я сообщу, когда они придут.
# $count — сколько минут осталось; $what — время (UTC), когда ссылка перестанет работать.
recharge-expires-minutes = ⏰ Ссылка действует { $count ->
        [one] { $count } минуту
        [few] { $count } минуты
       *[many] { $count } минут
    }, до { $what } UTC.
recharge-expires-hours = ⏰ Ссылка действует { $count ->
        [one] { $count } час
        [few] { $count } часа
       *[many] { $count } часов
    }, до { $what } UTC.
recharge-pay = 💳 Оплатить
recharge-check = 🔄 Проверить оплату

## Проверка оплаты (ответы короткие: Telegram показывает не больше 200 символов)

topup-title = 🧾 <b>Пополнение №{ $id }</b>
topup-not-found = Такой счёт не найден. Чтобы пополнить баланс, откройте /recharge.
topup-status-paid = ✅ Оплачено: деньги на вашем балансе.
topup-status-waiting = ⏳ Оплаты пока нет. Оплатите кнопкой «Оплатить» — я сообщу, как только деньги придут.
topup-status-confirming = ⏳ Платёж в пути и ждёт подтверждений сети. Он зачислится автоматически.
topup-status-partly-paid = ⚠️ Пока пришло меньше суммы счёта. Доплатите остаток на странице Heleket.
topup-status-underpaid = ⚠️ Оплачено меньше суммы счёта. Поддержка разберётся: /paysupport
topup-status-expired = ⌛ Срок счёта истёк или он отменён. Ничего не списано; создайте новое пополнение.
topup-status-failed = ❌ Платёж не прошёл. Создайте новое пополнение или напишите в /paysupport.
topup-status-refunded = ↩️ Heleket возвращает или уже вернул этот платёж. Вопросы: /paysupport
topup-status-locked = ⚠️ Heleket задержал платёж для проверки. Вопросы: /paysupport

## История

history-title = 📜 <b>Платежи и заказы</b>
history-empty = Здесь пока пусто. Тут появятся ваши пополнения и заказы.
history-times = <i>Время указано в UTC.</i>
history-prev = « Новее
history-next = Старше »
history-topup = ➕ Пополнение { $amount }
history-bonus = 🎁 Бонус { $amount }
history-refund = ↩️ Возврат { $amount }
history-adjustment = ✏️ Корректировка магазином { $amount }
history-purchase = 🛒 Оплата { $amount }
# $what — что куплено («50 Telegram Stars для @durov»); $price — цена.
history-order-pending = ⏳ Заказ №{ $id }: { $what } — { $price }, выполняется
history-order-delivered = ✅ Заказ №{ $id }: { $what } — { $price }, доставлен
history-order-refunded = ↩️ Заказ №{ $id }: { $what } — { $price }, возвращён

## Язык

language-choose = 🌐 Выберите язык:
language-changed = ✅ Готово: теперь я говорю по-русски.

## Помощь

help-text = ❓ <b>Как работает магазин</b>
    1. Пополните баланс криптовалютой: /recharge. Деньги зачисляются автоматически после подтверждения платежа.
    2. Купите Telegram Stars (/buy_stars) или подарите Telegram Premium (/premium) — себе или любому @username.
    3. Заказ доставляется через Fragment, и я сообщаю, когда он выполнен. Если заказ не удаётся доставить, деньги возвращаются на баланс.

    <b>Команды</b>
    /start — главное меню
    /balance — ваш баланс
    /recharge — пополнить криптовалютой
    /buy_stars — купить Telegram Stars
    /premium — подарить Telegram Premium
    /history — платежи и заказы
    /language — сменить язык
    /paysupport — помощь с оплатой
help-support = 🛟 Поддержка: { $name }
help-no-support = 🛟 Магазин пока не указал контакт поддержки. Ваши деньги в безопасности: каждое пополнение и заказ записаны, их показывает /history.
paysupport-text = 💳 <b>Поддержка по платежам</b>
    • Пополнение зачисляется автоматически, как только сеть подтвердит платёж. Если деньги не пришли, нажмите «Проверить оплату» под счётом.
    • Заказ, который не удалось доставить, автоматически возвращается на баланс.
    • /history показывает все пополнения и заказы с номерами; укажите номер, когда пишете нам.
