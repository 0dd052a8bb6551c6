"""The operator's side of the bot: who is an admin, the audit log, and the admin flows."""
