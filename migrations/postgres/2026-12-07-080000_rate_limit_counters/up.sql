-- The shared rate-limit windows as one row per key instead of one row per key and second, so
-- that deciding a batch reads, locks and writes each key once. PostgreSQL only, as the table
-- it replaces (see migrations/README.md).
--
-- `rate_limit_acquire` gains reservations asked ahead of demand (`reserve_only`); a node of
-- the previous release, whose function this replaces, answers 503 until it is upgraded too.

CREATE TABLE rate_limit_counters (
    -- 0: a webhook, 1: an organization.
    scope smallint NOT NULL CHECK (scope IN (0, 1)),
    key uuid NOT NULL,
    -- The newest second (since the Unix epoch, of the deciding node's clock) charged.
    newest bigint NOT NULL,
    -- The requests charged in each second b of the window (newest - 61, newest], at
    -- counts[b mod 61 + 1]; the slots of seconds that left the window hold 0.
    counts integer[] NOT NULL CHECK (array_ndims(counts) = 1 AND cardinality(counts) = 61),
    PRIMARY KEY (scope, key)
) WITH (fillfactor = 50); -- room for every update to stay on its page (HOT)

-- The windows charged so far, moved over with their counts.
INSERT INTO rate_limit_counters (scope, key, newest, counts)
SELECT w.scope, w.key, k.newest,
       ARRAY(
           SELECT coalesce(sum(b.count), 0)::integer
           FROM generate_series(0, 60) AS s (slot)
           LEFT JOIN rate_limit_windows AS b
             ON b.scope = w.scope AND b.key = w.key AND b.bucket > k.newest - 61
            AND (b.bucket % 61 + 61) % 61 = s.slot
           GROUP BY s.slot
           ORDER BY s.slot
       )
FROM (SELECT DISTINCT scope, key FROM rate_limit_windows) AS w
CROSS JOIN LATERAL (
    SELECT max(bucket) AS newest
    FROM rate_limit_windows AS m
    WHERE m.scope = w.scope AND m.key = w.key
) AS k;

DROP FUNCTION rate_limit_acquire(uuid[], integer[], uuid[], integer[], bigint[], integer[]);
DROP TABLE rate_limit_windows;

-- Decides a batch of requests in order, exactly as webhook_domain::rules::decide would on the
-- stored windows, charges the admitted ones and answers one row per request, in order.
--
-- Request i is (webhook_ids[i], webhook_quotas[i], organization_ids[i],
-- organization_quotas[i], nows[i] in microseconds since the Unix epoch, slots[i]). An admitted
-- request asking for slots[i] > 1 is charged slots[i] to both windows when both have room for
-- them and its second is their newest bucket (a reservation: the node admits up to
-- slots[i] - 1 more requests of the pair in that second itself); else it is charged 1. Its
-- row answers the slots charged, and the status as if it alone had been charged.
--
-- A request with reserve_only[i] is no request but a reservation asked ahead of the pair's
-- requests: it is charged slots[i] to both windows when both have room for all of them and its
-- second is their newest bucket, else nothing; its row answers admitted (and the slots) or not,
-- never a refusal (denied_scope stays NULL).
--
-- Each key's row is locked (`FOR UPDATE`) before it is read and stays locked until the charges
-- commit: whatever node decides, no two decisions on one key overlap. Every batch creates its
-- missing rows and then locks its rows in one order, (scope, key), so two batches never wait
-- on each other in a cycle.
--
-- The charges may commit without waiting for their WAL flush: an invocation a node commits
-- after its charge flushes the WAL up to its own commit, the charge's included, so every
-- accepted request's charge is as durable as the request.
CREATE FUNCTION rate_limit_acquire(
    webhook_ids uuid[],
    webhook_quotas integer[],
    organization_ids uuid[],
    organization_quotas integer[],
    nows bigint[],
    slots integer[],
    reserve_only boolean[]
) RETURNS TABLE (
    admitted boolean,
    -- Which quota refused: 0 the webhook's, 1 the organization's; NULL when admitted.
    denied_scope smallint,
    -- Microseconds until a refused request would be admitted; 0 when admitted.
    retry_after_us bigint,
    status_limit integer,
    status_remaining integer,
    status_reset_after_us bigint,
    -- Slots charged to both windows: 1, or slots[i] for a reservation; 0 when refused (or
    -- for a reservation asked ahead, when there was no room for it).
    charged integer
) LANGUAGE plpgsql
-- Plans made once per session: a custom plan per call would cost more than the call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n integer := cardinality(nows);
    webhook_list uuid[];
    organization_list uuid[];
    webhook_count integer;
    key_scopes smallint[];
    key_ids uuid[];
    webhook_key integer;
    organization_key integer;
    first_bucket bigint;
    -- Per key j, in (scope, key) order: its newest bucket, the requests in its window, and
    -- its 61 counts at key_counts[j][bucket mod 61 + 1].
    key_newest bigint[];
    key_total integer[];
    key_counts integer[];
    i integer;
    j integer;
    x bigint;
    age integer;
    s integer;
    now_us bigint;
    bucket_now bigint;
    quota integer;
    deny_key integer;
    must_leave integer;
    left_count integer;
    w_remaining integer;
    o_remaining integer;
    spare integer;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);

    -- Every key once, in the order rows are locked: webhooks (scope 0), then organizations,
    -- each by id.
    SELECT array_agg(DISTINCT u ORDER BY u) INTO webhook_list FROM unnest(webhook_ids) AS u;
    SELECT array_agg(DISTINCT u ORDER BY u) INTO organization_list
    FROM unnest(organization_ids) AS u;
    webhook_count := cardinality(webhook_list);
    key_ids := webhook_list || organization_list;
    key_scopes := array_fill(0::smallint, ARRAY[webhook_count])
        || array_fill(1::smallint, ARRAY[cardinality(organization_list)]);
    SELECT min((t - ((t % 1000000 + 1000000) % 1000000)) / 1000000)
    INTO first_bucket
    FROM unnest(nows) AS t;

    -- Rows for keys never charged, then every row locked and read, both in (scope, key)
    -- order. A row the purge deletes in between is made again.
    LOOP
        INSERT INTO rate_limit_counters (scope, key, newest, counts)
        SELECT k.scope, k.key, first_bucket, array_fill(0, ARRAY[61])
        FROM unnest(key_scopes, key_ids) AS k (scope, key)
        ORDER BY k.scope, k.key
        ON CONFLICT DO NOTHING;
        SELECT array_agg(l.newest ORDER BY l.scope, l.key),
               array_agg((SELECT sum(v)::integer FROM unnest(l.counts) AS v)
                         ORDER BY l.scope, l.key),
               array_agg(l.counts ORDER BY l.scope, l.key)
        INTO key_newest, key_total, key_counts
        FROM (
            SELECT c.scope, c.key, c.newest, c.counts
            FROM rate_limit_counters AS c
            JOIN unnest(key_scopes, key_ids) AS k (scope, key)
              ON c.scope = k.scope AND c.key = k.key
            ORDER BY c.scope, c.key
            FOR UPDATE OF c
        ) AS l;
        EXIT WHEN coalesce(cardinality(key_newest), 0) = cardinality(key_ids);
    END LOOP;

    FOR i IN 1 .. n LOOP
        now_us := nows[i];
        bucket_now := (now_us - ((now_us % 1000000 + 1000000) % 1000000)) / 1000000;
        webhook_key := array_position(webhook_list, webhook_ids[i]);
        organization_key := webhook_count + array_position(organization_list, organization_ids[i]);
        -- Move both windows to now; a clock behind the newest bucket counts in it.
        FOREACH j IN ARRAY ARRAY[webhook_key, organization_key] LOOP
            IF bucket_now > key_newest[j] THEN
                IF bucket_now - key_newest[j] >= 61 THEN
                    FOR s IN 1 .. 61 LOOP
                        key_counts[j][s] := 0;
                    END LOOP;
                    key_total[j] := 0;
                ELSE
                    FOR age IN 0 .. (bucket_now - key_newest[j] - 1)::integer LOOP
                        s := ((bucket_now - age) % 61 + 61) % 61 + 1;
                        key_total[j] := key_total[j] - key_counts[j][s];
                        key_counts[j][s] := 0;
                    END LOOP;
                END IF;
                key_newest[j] := bucket_now;
            END IF;
        END LOOP;

        -- A reservation asked ahead is charged all its slots or nothing.
        IF reserve_only[i] AND NOT (
               slots[i] >= 1
               AND key_newest[webhook_key] = bucket_now
               AND key_newest[organization_key] = bucket_now
               AND key_total[webhook_key] <= webhook_quotas[i] - slots[i]
               AND key_total[organization_key] <= organization_quotas[i] - slots[i]) THEN
            admitted := false;
            denied_scope := NULL;
            retry_after_us := 0;
            status_limit := 0;
            status_remaining := 0;
            status_reset_after_us := 0;
            charged := 0;
            RETURN NEXT;
            CONTINUE;
        END IF;

        deny_key := NULL;
        IF key_total[webhook_key] >= webhook_quotas[i] THEN
            deny_key := webhook_key;
            quota := webhook_quotas[i];
        ELSIF key_total[organization_key] >= organization_quotas[i] THEN
            deny_key := organization_key;
            quota := organization_quotas[i];
        END IF;

        IF deny_key IS NOT NULL THEN
            j := deny_key;
            admitted := false;
            charged := 0;
            denied_scope := key_scopes[j];
            -- Until enough requests leave the window for one more to fit.
            must_leave := key_total[j] - quota + 1;
            left_count := 0;
            retry_after_us := NULL;
            FOR age IN REVERSE 60 .. 0 LOOP
                x := key_newest[j] - age;
                left_count := left_count + key_counts[j][(x % 61 + 61) % 61 + 1];
                IF left_count >= must_leave THEN
                    retry_after_us := greatest((x + 61) * 1000000 - now_us, 0);
                    EXIT;
                END IF;
            END LOOP;
            IF retry_after_us IS NULL THEN
                retry_after_us := greatest((key_newest[j] + 61) * 1000000 - now_us, 0);
            END IF;
            status_limit := quota;
            status_remaining := greatest(quota - key_total[j], 0);
            status_reset_after_us := 0;
            FOR age IN 0 .. 60 LOOP
                x := key_newest[j] - age;
                IF key_counts[j][(x % 61 + 61) % 61 + 1] > 0 THEN
                    status_reset_after_us := greatest((x + 61) * 1000000 - now_us, 0);
                    EXIT;
                END IF;
            END LOOP;
        ELSE
            -- A reservation only in the request's own second, and only when both windows
            -- have room for all of it (written so that no sum can overflow).
            charged := 1;
            IF reserve_only[i] THEN
                charged := slots[i];
            ELSIF slots[i] > 1
               AND key_newest[webhook_key] = bucket_now
               AND key_newest[organization_key] = bucket_now
               AND key_total[webhook_key] <= webhook_quotas[i] - slots[i]
               AND key_total[organization_key] <= organization_quotas[i] - slots[i] THEN
                charged := slots[i];
            END IF;
            FOREACH j IN ARRAY ARRAY[webhook_key, organization_key] LOOP
                s := (key_newest[j] % 61 + 61) % 61 + 1;
                key_counts[j][s] := key_counts[j][s] + charged;
                key_total[j] := key_total[j] + charged;
            END LOOP;
            admitted := true;
            denied_scope := NULL;
            retry_after_us := 0;
            -- The quota with fewer requests left, counting the reservation's spare slots as
            -- left (they are this node's to admit); both were just charged in their newest
            -- bucket, so each window empties 61 seconds after it.
            spare := charged - 1;
            IF reserve_only[i] THEN
                spare := charged;
            END IF;
            w_remaining := greatest(webhook_quotas[i] - key_total[webhook_key] + spare, 0);
            o_remaining := greatest(organization_quotas[i] - key_total[organization_key] + spare, 0);
            IF o_remaining < w_remaining THEN
                j := organization_key;
                status_limit := organization_quotas[i];
                status_remaining := o_remaining;
            ELSE
                j := webhook_key;
                status_limit := webhook_quotas[i];
                status_remaining := w_remaining;
            END IF;
            status_reset_after_us := greatest((key_newest[j] + 61) * 1000000 - now_us, 0);
        END IF;
        RETURN NEXT;
    END LOOP;

    UPDATE rate_limit_counters AS c
    SET newest = k.newest,
        counts = ARRAY(SELECT key_counts[k.j][g.slot] FROM generate_series(1, 61) AS g (slot))
    FROM unnest(key_scopes, key_ids, key_newest) WITH ORDINALITY AS k (scope, key, newest, j)
    WHERE c.scope = k.scope AND c.key = k.key;
END;
$$;
