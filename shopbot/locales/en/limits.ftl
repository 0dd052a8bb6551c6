limit-slow-down = You are going a little fast. Please wait { $seconds } s and try again.
limit-payments = Too many payment actions in a row. Please wait { $seconds } s and try again.
limit-busy = The shop is very busy right now. Please try again in { $seconds } s.
