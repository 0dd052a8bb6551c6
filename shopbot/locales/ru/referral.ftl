# Рефералы: /referral, кнопка «Пригласить», уведомления пригласившему, история и вид для админа.

menu-referral = 🤝 Пригласить друзей
cmd-referral = Пригласить друзей и получать бонусы

referral-title = 🤝 <b>Пригласите друзей</b>
referral-explain = Поделитесь своей ссылкой. Когда друг запустит магазин по ней, вы будете получать { $percent } % от каждого его пополнения в течение { $months ->
        [one] { $months } месяца
        [few] { $months } месяцев
       *[many] { $months } месяцев
    } — прямо на баланс.
referral-link = 🔗 Ваша ссылка: { $link }
referral-joined = 👥 Пришли по вашей ссылке: { $count }
referral-earned = 💰 Заработано: { $amount } ({ $count ->
        [one] { $count } бонус
        [few] { $count } бонуса
       *[many] { $count } бонусов
    })
referral-recent = Последние бонусы:
referral-entry = +{ $amount }
referral-entry-flagged = +{ $amount } ⚠️ пополнение возвращено; магазин его проверит
referral-share = 📤 Поделиться ссылкой
referral-share-text = Покупайте Telegram Stars и Premium за криптовалюту
referral-off = 🤝 Реферальная программа в этом магазине выключена.

notice-referral-joined = 👥 По вашей ссылке только что пришёл новый пользователь. Теперь его пополнения приносят вам бонус.
notice-referral-bonus = 🎁 <b>Реферальный бонус: { $amount }</b> за пополнение друга. Ваш баланс: { $balance }

history-referral-bonus = 🤝 Реферальный бонус { $amount }

## Админ
admin-referral-figures = 🤝 Рефералы: по ссылкам { $count ->
        [one] пришёл { $count } пользователь
        [few] пришли { $count } пользователя
       *[many] пришли { $count } пользователей
    }, выплачено { $bonuses ->
        [one] { $bonuses } бонус
        [few] { $bonuses } бонуса
       *[many] { $bonuses } бонусов
    }: { $amount }
admin-referral-flagged = ⚠️ Помечено { $count ->
        [one] { $count } бонус
        [few] { $count } бонуса
       *[many] { $count } бонусов
    }: Heleket сообщил о возврате пополнения после выплаты бонуса.
admin-referral-top = 🏆 Лучшие пригласившие: { $what }
admin-referral-invited-by = 🤝 Пригласил { $what }, { $when }
admin-referral-not-invited = 🤝 Никем не приглашён
admin-referral-invitees = 👥 Пригласил { $count ->
        [one] { $count } пользователя
        [few] { $count } пользователей
       *[many] { $count } пользователей
    }:
admin-referral-invitee =   • { $what }: бонусы { $amount }
admin-referral-invitee-flagged =   • { $what }: бонусы { $amount } ⚠️ помечено: { $count } (пополнение возвращено)
