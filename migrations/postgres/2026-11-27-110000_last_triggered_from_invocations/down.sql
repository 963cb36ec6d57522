UPDATE webhooks w SET last_triggered_at = latest.at
FROM (
    SELECT webhook_id, max(received_at) AS at FROM invocations
    WHERE outcome = 'accepted' GROUP BY webhook_id
) latest
WHERE w.id = latest.webhook_id
  AND (w.last_triggered_at IS NULL OR w.last_triggered_at < latest.at);
DROP INDEX invocations_accepted_by_webhook;
