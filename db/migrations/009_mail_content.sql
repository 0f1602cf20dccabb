-- Mail content: every notice is rendered from its template when it is queued,
-- inside the transaction of the effect it reports, and stored as it will be sent.
--
-- notifications.body      the plain-text part (as before)
-- notifications.body_html the HTML part; NULL only on rows queued before this migration,
--                         which the transport sends as text only
-- notifications.locale    the language the notice was rendered in (after fallback: a
--                         customer who asked for a language without templates gets `en`)
-- orders.customer_locale  what the storefront sent as `customer.locale`, kept as
--                         sent; NULL means the shop's default (settings.default_locale)

ALTER TABLE notifications
    ADD COLUMN body_html text,
    ADD COLUMN locale text;

ALTER TABLE orders ADD COLUMN customer_locale text;
