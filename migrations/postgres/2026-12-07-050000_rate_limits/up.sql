-- The rate-limit windows shared by every node of one database (the `RateLimiter` port on
-- PostgreSQL): how many requests each webhook and organization was charged in each second.
-- A window is the last 61 one-second buckets of a key (webhook_domain::rules::rate_limit).
-- PostgreSQL only: a SQLite node keeps its windows in memory (see migrations/README.md).

CREATE TABLE rate_limit_windows (
    -- 0: a webhook, 1: an organization.
    scope smallint NOT NULL CHECK (scope IN (0, 1)),
    key uuid NOT NULL,
    -- Seconds since the Unix epoch (of the deciding node's clock).
    bucket bigint NOT NULL,
    count integer NOT NULL CHECK (count > 0),
    PRIMARY KEY (scope, key, bucket)
) WITH (fillfactor = 70); -- room for the counts' updates to stay on their page (HOT)

-- Decides a batch of requests in order, exactly as webhook_domain::rules::decide would on the
-- stored windows, charges the admitted ones and answers one row per request, in order.
--
-- Request i is (webhook_ids[i], webhook_quotas[i], organization_ids[i],
-- organization_quotas[i], nows[i] in microseconds since the Unix epoch, slots[i]). An admitted
-- request asking for slots[i] > 1 is charged slots[i] to both windows when both have room for
-- them and its second is their newest bucket (a reservation: the node admits up to
-- slots[i] - 1 more requests of the pair in that second itself); else it is charged 1. Its
-- row answers the slots charged, and the status as if it alone had been charged. Each key's window is
-- locked (a transaction-scoped advisory lock, taken in one global order so that two batches
-- never wait on each other in a cycle) before it is read, and stays locked until the charges
-- commit: whatever node decides, no two decisions on one key overlap.
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
    slots integer[]
) RETURNS TABLE (
    admitted boolean,
    -- Which quota refused: 0 the webhook's, 1 the organization's; NULL when admitted.
    denied_scope smallint,
    -- Microseconds until a refused request would be admitted; 0 when admitted.
    retry_after_us bigint,
    status_limit integer,
    status_remaining integer,
    status_reset_after_us bigint,
    -- Slots charged to both windows: 1, or slots[i] for a reservation; 0 when refused.
    charged integer
) LANGUAGE plpgsql
-- Plans made once per session: a custom plan per call would cost more than the call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n integer := cardinality(nows);
    key_scopes smallint[];
    key_ids uuid[];
    key_count integer;
    webhook_key integer[];
    organization_key integer[];
    first_bucket bigint;
    -- Per key j: the newest bucket, the requests in the window, and 61 counts at
    -- counts[(j - 1) * 61 + slot + 1], slot = bucket mod 61.
    newest bigint[];
    total integer[];
    counts integer[];
    charged_key integer[] := '{}';
    charged_bucket bigint[] := '{}';
    charged_count integer[] := '{}';
    lock_class integer;
    lock_object integer;
    row_key integer;
    row_bucket bigint;
    row_count integer;
    row_newest bigint;
    loaded boolean[];
    stored_newest bigint[];
    webhook_list uuid[];
    organization_list uuid[];
    i integer;
    j integer;
    base integer;
    b bigint;
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
BEGIN
    IF n IS NULL OR n = 0 THEN
        RETURN;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);

    -- Every key once (webhooks, then organizations), and each request's two keys. A batch
    -- holds few distinct keys, and a search of a short array costs less than planning a join.
    webhook_key := array_fill(0, ARRAY[n]);
    organization_key := array_fill(0, ARRAY[n]);
    webhook_list := '{}';
    organization_list := '{}';
    FOR i IN 1 .. n LOOP
        j := array_position(webhook_list, webhook_ids[i]);
        IF j IS NULL THEN
            webhook_list := webhook_list || webhook_ids[i];
            j := cardinality(webhook_list);
        END IF;
        webhook_key[i] := j;
        j := array_position(organization_list, organization_ids[i]);
        IF j IS NULL THEN
            organization_list := organization_list || organization_ids[i];
            j := cardinality(organization_list);
        END IF;
        organization_key[i] := j;
    END LOOP;
    FOR i IN 1 .. n LOOP
        organization_key[i] := organization_key[i] + cardinality(webhook_list);
    END LOOP;
    key_ids := webhook_list || organization_list;
    key_scopes := array_fill(0::smallint, ARRAY[cardinality(webhook_list)])
        || array_fill(1::smallint, ARRAY[cardinality(organization_list)]);
    key_count := cardinality(key_ids);

    -- Lock every key, in one order for every caller.
    FOR lock_class, lock_object IN
        SELECT DISTINCT 2026120700 + u.scope, hashtext(u.key::text)
        FROM unnest(key_scopes, key_ids) AS u (scope, key)
        ORDER BY 1, 2
    LOOP
        PERFORM pg_advisory_xact_lock(lock_class, lock_object);
    END LOOP;

    -- The windows as stored, each positioned at its newest bucket (or at the batch's first
    -- second when that is later).
    SELECT min((t - ((t % 1000000 + 1000000) % 1000000)) / 1000000)
    INTO first_bucket
    FROM unnest(nows) AS t;
    -- Each key's window positioned at its newest bucket (or at the batch's first second when
    -- that is later), and the requests in it: one aggregate per key. The counts of its
    -- buckets are read only for a key that a request moves to a later second or finds full
    -- (`loaded`); until then its slots hold only this batch's charges.
    newest := array_fill(first_bucket, ARRAY[key_count]);
    total := array_fill(0, ARRAY[key_count]);
    counts := array_fill(0, ARRAY[key_count * 61]);
    loaded := array_fill(false, ARRAY[key_count]);
    FOR row_key, row_newest, row_count IN
        SELECT stored.j, stored.key_newest,
               coalesce(sum(stored.count) FILTER (WHERE stored.bucket > stored.key_newest - 61), 0)
        FROM (
            SELECT k.j, w.bucket, w.count,
                   greatest(first_bucket, max(w.bucket) OVER (PARTITION BY k.j)) AS key_newest
            FROM unnest(key_scopes, key_ids) WITH ORDINALITY AS k (scope, key, j)
            JOIN rate_limit_windows AS w
              ON w.scope = k.scope AND w.key = k.key AND w.bucket > first_bucket - 61
        ) AS stored
        GROUP BY stored.j, stored.key_newest
    LOOP
        newest[row_key] := row_newest;
        total[row_key] := row_count;
    END LOOP;
    stored_newest := newest;

    FOR i IN 1 .. n LOOP
        now_us := nows[i];
        bucket_now := (now_us - ((now_us % 1000000 + 1000000) % 1000000)) / 1000000;
        -- Read the buckets of a key this request moves or finds full, then move both windows
        -- to now; a clock behind the newest bucket counts in it.
        FOREACH j IN ARRAY ARRAY[webhook_key[i], organization_key[i]] LOOP
            IF j = webhook_key[i] THEN
                quota := webhook_quotas[i];
            ELSE
                quota := organization_quotas[i];
            END IF;
            IF NOT loaded[j] AND (bucket_now > newest[j] OR total[j] >= quota) THEN
                FOR row_bucket, row_count IN
                    SELECT w.bucket, w.count
                    FROM rate_limit_windows AS w
                    WHERE w.scope = key_scopes[j] AND w.key = key_ids[j]
                      AND w.bucket > stored_newest[j] - 61
                LOOP
                    base := (j - 1) * 61 + ((row_bucket % 61 + 61) % 61)::integer + 1;
                    counts[base] := counts[base] + row_count;
                END LOOP;
                loaded[j] := true;
            END IF;
            IF bucket_now > newest[j] THEN
                IF bucket_now - newest[j] >= 61 THEN
                    FOR s IN 1 .. 61 LOOP
                        counts[(j - 1) * 61 + s] := 0;
                    END LOOP;
                    total[j] := 0;
                ELSE
                    FOR age IN 0 .. (bucket_now - newest[j] - 1)::integer LOOP
                        x := bucket_now - age;
                        base := (j - 1) * 61 + ((x % 61 + 61) % 61)::integer + 1;
                        total[j] := total[j] - counts[base];
                        counts[base] := 0;
                    END LOOP;
                END IF;
                newest[j] := bucket_now;
            END IF;
        END LOOP;

        deny_key := NULL;
        IF total[webhook_key[i]] >= webhook_quotas[i] THEN
            deny_key := webhook_key[i];
            quota := webhook_quotas[i];
        ELSIF total[organization_key[i]] >= organization_quotas[i] THEN
            deny_key := organization_key[i];
            quota := organization_quotas[i];
        END IF;

        IF deny_key IS NOT NULL THEN
            j := deny_key;
            admitted := false;
            charged := 0;
            denied_scope := key_scopes[j];
            -- Until enough requests leave the window for one more to fit.
            must_leave := total[j] - quota + 1;
            left_count := 0;
            retry_after_us := NULL;
            FOR age IN REVERSE 60 .. 0 LOOP
                x := newest[j] - age;
                left_count := left_count + counts[(j - 1) * 61 + ((x % 61 + 61) % 61)::integer + 1];
                IF left_count >= must_leave THEN
                    retry_after_us := greatest((x + 61) * 1000000 - now_us, 0);
                    EXIT;
                END IF;
            END LOOP;
            IF retry_after_us IS NULL THEN
                retry_after_us := greatest((newest[j] + 61) * 1000000 - now_us, 0);
            END IF;
            status_limit := quota;
            status_remaining := greatest(quota - total[j], 0);
            status_reset_after_us := 0;
            FOR age IN 0 .. 60 LOOP
                x := newest[j] - age;
                IF counts[(j - 1) * 61 + ((x % 61 + 61) % 61)::integer + 1] > 0 THEN
                    status_reset_after_us := greatest((x + 61) * 1000000 - now_us, 0);
                    EXIT;
                END IF;
            END LOOP;
        ELSE
            -- A reservation only in the request's own second, and only when both windows
            -- have room for all of it (written so that no sum can overflow).
            charged := 1;
            IF slots[i] > 1
               AND newest[webhook_key[i]] = bucket_now
               AND newest[organization_key[i]] = bucket_now
               AND total[webhook_key[i]] <= webhook_quotas[i] - slots[i]
               AND total[organization_key[i]] <= organization_quotas[i] - slots[i] THEN
                charged := slots[i];
            END IF;
            FOREACH j IN ARRAY ARRAY[webhook_key[i], organization_key[i]] LOOP
                base := (j - 1) * 61 + ((newest[j] % 61 + 61) % 61)::integer + 1;
                counts[base] := counts[base] + charged;
                total[j] := total[j] + charged;
                charged_key := charged_key || j;
                charged_bucket := charged_bucket || newest[j];
                charged_count := charged_count || charged;
            END LOOP;
            admitted := true;
            denied_scope := NULL;
            retry_after_us := 0;
            -- The quota with fewer requests left, counting the reservation's other slots as
            -- left (they are this node's to admit); both were just charged in their newest
            -- bucket, so each window empties 61 seconds after it.
            w_remaining := greatest(webhook_quotas[i] - total[webhook_key[i]] + (charged - 1), 0);
            o_remaining := greatest(organization_quotas[i] - total[organization_key[i]]
                + (charged - 1), 0);
            IF o_remaining < w_remaining THEN
                j := organization_key[i];
                status_limit := organization_quotas[i];
                status_remaining := o_remaining;
            ELSE
                j := webhook_key[i];
                status_limit := webhook_quotas[i];
                status_remaining := w_remaining;
            END IF;
            status_reset_after_us := greatest((newest[j] + 61) * 1000000 - now_us, 0);
        END IF;
        RETURN NEXT;
    END LOOP;

    IF cardinality(charged_key) > 0 THEN
        INSERT INTO rate_limit_windows AS w (scope, key, bucket, count)
        SELECT key_scopes[c.j], key_ids[c.j], c.bucket, sum(c.slots)::integer
        FROM unnest(charged_key, charged_bucket, charged_count) AS c (j, bucket, slots)
        GROUP BY c.j, c.bucket
        ON CONFLICT (scope, key, bucket) DO UPDATE SET count = w.count + excluded.count;
    END IF;
END;
$$;
