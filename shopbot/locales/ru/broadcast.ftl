# Рассылки администратора (shopbot/admin/broadcast_flow.py и broadcast_sender.py).
broadcast-ask-text = 📣 <b>Новая рассылка</b>
    Отправьте сообщение так, как его должны получить пользователи. Оформление (жирный, курсив, ссылки, спойлеры…) сохранится. Только текст: фото и файлы не поддерживаются.
broadcast-text-only = Отправьте сообщение текстом. Фото, файлы и стикеры не поддерживаются.
broadcast-ask-button = Добавить кнопку-ссылку под сообщением? Отправьте её как <code>Текст кнопки | https://example.com</code> или нажмите «Без кнопки».
broadcast-bad-button = Это не кнопка. Отправьте её как <code>Текст кнопки | https://example.com</code> (текст до 64 символов, адрес http или https) или нажмите «Без кнопки».
broadcast-no-button = Без кнопки
broadcast-quit = ✖️ Отмена
broadcast-quit-done = Рассылка отменена. Ничего не отправлено.
broadcast-ask-segment = Кому отправить?
broadcast-segment-all = Всем
broadcast-segment-en = Англоязычным
broadcast-segment-ru = Русскоязычным
broadcast-segment-7d = Активным за 7 дней
broadcast-segment-30d = Активным за 30 дней
broadcast-preview-below = 👇 Предпросмотр: ровно то, что получат пользователи.
broadcast-preview-refused = Telegram отклонил это сообщение: { $reason }. Ничего не отправлено; начните заново с /broadcast.
broadcast-confirm = 📣 Рассылка №{ $id }, получатели: { $segment }.
    Её получат { $count ->
        [one] { $count } пользователь
        [few] { $count } пользователя
       *[many] { $count } пользователей
    } (число уточнится в начале отправки).
broadcast-send = 🚀 Отправить
broadcast-cancel = ✖️ Отменить
broadcast-pause = ⏸ Пауза
broadcast-resume = ▶️ Продолжить
broadcast-started = Отправка началась: { $count ->
        [one] { $count } получатель
        [few] { $count } получателя
       *[many] { $count } получателей
    }.
broadcast-pause-done = Пауза.
broadcast-resume-done = Отправка продолжается.
broadcast-cancel-done = Отменено.
broadcast-draft-cancelled = Рассылка №{ $id } отменена. Ничего не отправлено.
broadcast-state-sending = 📣 Рассылка №{ $id }: идёт отправка…
broadcast-state-paused = ⏸ Рассылка №{ $id }: на паузе
broadcast-state-done = ✅ Рассылка №{ $id }: завершена
broadcast-state-cancelled = ✖️ Рассылка №{ $id }: отменена
broadcast-counts = Отправлено: { $sent } из { $total }
    Заблокировали бота: { $blocked } · Ошибки: { $failed }
broadcast-unknown = Возможно, не доставлено (магазин остановился во время отправки; повторно не отправляется): { $count }
broadcast-not-sent = Не отправлено: { $count }
broadcast-stale = Эта кнопка устарела. Начните новую рассылку с /broadcast.
broadcast-already = Рассылка №{ $id } { $state }: эта кнопка больше не действует.
broadcast-is-draft = — черновик
broadcast-is-sending = отправляется
broadcast-is-paused = на паузе
broadcast-is-done = завершена
broadcast-is-cancelled = отменена
